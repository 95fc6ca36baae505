package auth

// OpenEvery is Open watching the file at another interval, so that tests
// of the reloading need not wait a second per change.
var OpenEvery = open
