package esdb

// Stream categories. Names follow EventStoreDB's category-id convention so
// that $all subscriptions can filter on the category prefix.
const (
	CategoryWorkspace = "workspace"
	CategoryContact   = "contact"
	CategoryEvents    = "events"
)

// WorkspaceStream is the stream of one workspace (WorkspaceCreated,
// EventLimitChanged, ApiKeyCreated, ApiKeyRevoked).
func WorkspaceStream(workspaceID string) string { return CategoryWorkspace + "-" + workspaceID }

// ContactStream is the stream of one contact.
func ContactStream(contactID string) string { return CategoryContact + "-" + contactID }

// EventsStream is the stream of the custom events a workspace sent in one
// calendar month (yyyymm, UTC); its revision + 1 is that month's usage.
func EventsStream(workspaceID, yyyymm string) string {
	return CategoryEvents + "-" + workspaceID + "-" + yyyymm
}

// Prefix is the $all stream-name filter prefix of a category.
func Prefix(category string) string { return category + "-" }
