package smtp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FileSender writes each message as <dir>/<message-id>.eml instead of
// sending it; cmd/lark uses it when LARK_SMTP_URL is unset. The file name is
// the Message-ID without angle brackets, with every byte outside
// [A-Za-z0-9@._+=-] percent-encoded (so "/" cannot leave dir). Writes are
// atomic (temporary file, fsync, rename), and sending the same id again
// replaces the file rather than adding a second one. Safe for concurrent use.
type FileSender struct {
	dir string
	now func() time.Time
}

// NewFileSender creates dir if needed and returns a FileSender writing there.
func NewFileSender(dir string) (*FileSender, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("smtp: create mail dir: %w", err)
	}
	return &FileSender{dir: dir, now: time.Now}, nil
}

// Path is the file a message with this Message-ID is written to.
func (f *FileSender) Path(messageID string) (string, error) {
	id, err := NormalizeMessageID(messageID)
	if err != nil {
		return "", err
	}
	return filepath.Join(f.dir, fileName(id)+".eml"), nil
}

// Send writes m. Errors wrap ErrPermanent for an invalid message and
// ErrTemporary for a file-system failure or a cancelled ctx.
func (f *FileSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("smtp: write %s: %w: %w", m.MessageID, err, ErrTemporary)
	}
	msg, id, err := build(m, f.now())
	if err != nil {
		return fmt.Errorf("smtp: write %s: %w", m.MessageID, err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("smtp: render %s: %v: %w", id, err, ErrPermanent)
	}
	if err := writeAtomic(filepath.Join(f.dir, fileName(id)+".eml"), buf.Bytes()); err != nil {
		return fmt.Errorf("smtp: write %s: %w: %w", id, err, ErrTemporary)
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.eml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		_ = d.Close()
	}
	return nil
}

// fileName percent-encodes every byte of id outside [A-Za-z0-9@._+=-]; the
// mapping is one to one because '%' itself is encoded.
func fileName(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("@._+=-", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
