package store

import (
	"context"
	"errors"
	"fmt"
)

// Backend kinds, the values of Config.Kind.
const (
	KindDisk = "disk"
	KindS3   = "s3"
)

// Config is the storage part of modgate's configuration: which backend
// holds the objects, and its settings. New is the one place that turns it
// into a Store, so that a new backend is a new kind and a case in New, and
// nothing that uses the store changes.
type Config struct {
	// Kind is the backend: KindDisk (also when empty) or KindS3.
	Kind string
	// Dir is the disk backend's root directory (--data-dir).
	Dir string
	// S3 is the S3 backend's bucket and settings (--s3-*).
	S3 S3Config
}

// New returns the store that cfg describes, ready for use. ctx bounds the
// work of building it (the disk store's clean of its staging directory).
//
// What a caller needs beyond Store it finds as optional capabilities:
// StagingCleaner for the periodic clean of interrupted writes, FilePutter
// for a scratch directory next to the data.
func New(ctx context.Context, cfg Config) (Store, error) {
	switch cfg.Kind {
	case "", KindDisk:
		if cfg.Dir == "" {
			return nil, errors.New("store: disk storage needs a directory")
		}
		d, err := newDisk(ctx, cfg.Dir)
		if err != nil {
			return nil, err
		}
		return d, nil
	case KindS3:
		s, err := NewS3(ctx, cfg.S3)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store: unknown storage kind %q (known: %s, %s)", cfg.Kind, KindDisk, KindS3)
	}
}
