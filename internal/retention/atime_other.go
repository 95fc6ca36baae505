//go:build !linux && !darwin

package retention

import (
	"time"

	"github.com/modgate/modgate/internal/store"
)

// accessTimes is nil where access times are not read: the order is by
// modification time.
func accessTimes(store.Store) func(key string) (time.Time, bool) { return nil }
