package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

// TestReadAll: a document up to its limit is read whole, with its ETag;
// a larger one is ErrTooLarge; a missing one ErrNotExist.
func TestReadAll(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "meta/doc", strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	data, info, err := store.ReadAll(ctx, st, "meta/doc", 10)
	if err != nil || string(data) != "0123456789" || info.ETag == "" || info.Size != 10 {
		t.Errorf("ReadAll at the limit: %q, %+v, %v", data, info, err)
	}
	if _, _, err := store.ReadAll(ctx, st, "meta/doc", 9); !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "meta/doc") {
		t.Errorf("ReadAll over the limit: %v, want ErrTooLarge naming the key", err)
	}
	if _, _, err := store.ReadAll(ctx, st, "meta/none", 9); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("ReadAll of a missing key: %v, want ErrNotExist", err)
	}
}
