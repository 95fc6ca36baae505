package gitmirror

import (
	"strings"
	"testing"
)

// TestClassifySSH: what OpenSSH and git print for the ssh failures an
// operator can fix is told apart, with a message that says which.
func TestClassifySSH(t *testing.T) {
	for _, c := range []struct {
		stderr string
		kind   Kind
		says   string
	}{
		{"root@127.0.0.1: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n",
			KindAuth, "authentication failed"},
		{"No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\nfatal: Could not read from remote repository.\n",
			KindHostKey, "ssh host key not trusted"},
		{"@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@\nHost key verification failed.\n",
			KindHostKey, "ssh host key not trusted"},
		{"ssh: connect to host 127.0.0.1 port 2222: Connection refused\r\nfatal: Could not read from remote repository.\n",
			KindConnect, "cannot connect"},
	} {
		e := classify("127.0.0.1:2222", c.stderr, "")
		if e.Kind != c.kind || !strings.Contains(e.Error(), c.says) || !strings.HasPrefix(e.Error(), "127.0.0.1:2222: ") {
			t.Errorf("%q: kind %d, %q; want kind %d saying %q", c.stderr, e.Kind, e.Error(), c.kind, c.says)
		}
	}
}
