package doctor

import (
	"strings"
	"testing"
)

// TestPrivateAgreement runs the private-pattern comparison on server
// settings given directly, for the cases a server is not needed for.
func TestPrivateAgreement(t *testing.T) {
	tests := []struct {
		name       string
		server     []string
		goEnv      map[string]string
		wantStatus []Status
		wantFix    string
	}{
		{"same glob", []string{"*.corp.example"}, map[string]string{"GONOSUMDB": "*.corp.example", "GONOPROXY": "none"}, []Status{OK}, ""},
		{"wider client glob", []string{"git.corp.example/team"}, map[string]string{"GONOSUMDB": "*.corp.example", "GONOPROXY": "none"}, []Status{OK}, ""},
		{"narrower client pattern", []string{"*.corp.example"}, map[string]string{"GONOSUMDB": "git.corp.example"}, []Status{Fail}, "go env -w GONOSUMDB=git.corp.example,*.corp.example"},
		{"GOPRIVATE covers both", []string{"*.corp.example"}, map[string]string{"GOPRIVATE": "*.corp.example,other.example"}, []Status{Warn}, "go env -w GONOPROXY=other.example"},
		{"GOPRIVATE only this one", []string{"*.corp.example"}, map[string]string{"GOPRIVATE": "*.corp.example"}, []Status{Warn}, "go env -w GONOPROXY=none"},
		{"sumdb off", []string{"*.corp.example"}, map[string]string{"GOSUMDB": "off"}, []Status{OK}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.goEnv["GOSUMDB"] == "" {
				tt.goEnv["GOSUMDB"] = "sum.golang.org"
			}
			r := &Report{}
			p := &prober{settings: resolveSettings(Env{Go: tt.goEnv}, Options{}), report: r}
			p.private(&setupInfo{private: tt.server})
			if len(r.Checks) != len(tt.wantStatus) {
				t.Fatalf("checks = %+v, want statuses %v", r.Checks, tt.wantStatus)
			}
			for i, c := range r.Checks {
				if c.Status != tt.wantStatus[i] {
					t.Errorf("check %d = %+v, want %s", i, c, tt.wantStatus[i])
				}
			}
			if tt.wantFix != "" && !strings.HasPrefix(r.Checks[0].Fix, tt.wantFix) {
				t.Errorf("fix = %q, want %q", r.Checks[0].Fix, tt.wantFix)
			}
		})
	}
}

func TestSetupPrivateShapes(t *testing.T) {
	for _, raw := range []string{`["a.example","*.b.example"]`, `"a.example, *.b.example"`} {
		s := setupInfo{Private: []byte(raw)}
		if got := strings.Join(s.patterns(), "|"); got != "a.example|*.b.example" {
			t.Errorf("patterns of %s = %q", raw, got)
		}
	}
}
