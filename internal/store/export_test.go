package store

// Internals exposed to the external test package.

const (
	StagingDir   = stagingDir
	StaleTempAge = staleTempAge
)

// JoinUnder exposes the root-containment check without CheckKey in front.
func JoinUnder(d *Disk, rel string) (string, error) { return d.joinUnder(rel) }
