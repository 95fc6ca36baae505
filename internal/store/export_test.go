package store

// Internals exposed to the external test package.

const (
	StagingDir   = stagingDir
	StaleTempAge = staleTempAge
)

// JoinUnder exposes the root-containment check without CheckKey in front.
func JoinUnder(d *Disk, rel string) (string, error) { return d.joinUnder(rel) }

// SetBeforePlaceHook runs hook just before Put renames a tree of new
// directories into place at top, until the returned func is called.
func SetBeforePlaceHook(hook func(top string)) (restore func()) {
	testHookBeforePlace = hook
	return func() { testHookBeforePlace = nil }
}
