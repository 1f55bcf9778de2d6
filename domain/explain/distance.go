package explain

import (
	"strings"
	"unicode/utf8"
)

// Distance is the optimal-string-alignment distance between a and b (the
// restricted Damerau-Levenshtein distance): the fewest single-character
// insertions, deletions, substitutions and transpositions of two adjacent
// characters that turn a into b, counted over Unicode code points, with no
// substring edited twice.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	n, m := len(ra), len(rb)
	if n == 0 {
		return m
	}
	if m == 0 {
		return n
	}
	// Three rolling rows: i-2, i-1, i.
	prev2 := make([]int, m+1)
	prev := make([]int, m+1)
	cur := make([]int, m+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= n; i++ {
		cur[0] = i
		for j := 1; j <= m; j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[m]
}

// Near-miss kinds.
const (
	NearMissCase = "differs_only_in_case"
	NearMissEdit = "small_edit"
)

// NearMiss tells whether an event named eventName looks like a mistyped
// trigger name: the names are not equal but are equal ignoring case
// (Unicode simple folding: NearMissCase), or they are within a small edit
// distance (NearMissEdit): [Distance] ≤ 2 when the shorter name has at
// least 5 characters, ≤ 1 when it has 2 to 4, and never for names of one
// character (any two one-letter names are one edit apart). It returns the
// kind ("" when not a near miss) and the distance.
func NearMiss(eventName, triggerName string) (kind string, distance int) {
	if eventName == triggerName {
		return "", 0
	}
	d := Distance(eventName, triggerName)
	if strings.EqualFold(eventName, triggerName) {
		return NearMissCase, d
	}
	short := min(utf8.RuneCountInString(eventName), utf8.RuneCountInString(triggerName))
	limit := 0
	switch {
	case short >= 5:
		limit = 2
	case short >= 2:
		limit = 1
	}
	if d <= limit {
		return NearMissEdit, d
	}
	return "", d
}
