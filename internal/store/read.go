package store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned (wrapped) by ReadAll for an object over its
// limit.
var ErrTooLarge = errors.New("object too large")

// ReadAll reads the small document at key whole, with its Info (the ETag
// a later PutIf compares). An object over max bytes is an error matching
// ErrTooLarge, and at most max+1 of its bytes are read: what a store
// holds is not trusted with this process's memory, whoever wrote it.
func ReadAll(ctx context.Context, s Store, key string, max int64) ([]byte, Info, error) {
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	defer rc.Close()
	if info.Size > max {
		return nil, info, fmt.Errorf("%s: %w: %d bytes, more than %d", key, ErrTooLarge, info.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, info, err
	}
	if int64(len(data)) > max {
		return nil, info, fmt.Errorf("%s: %w: more than %d bytes", key, ErrTooLarge, max)
	}
	return data, info, nil
}
