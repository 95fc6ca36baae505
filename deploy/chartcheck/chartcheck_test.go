package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// good is a small release that passes every check: three replicas behind
// a Service, with a budget, an autoscaler and a ServiceMonitor.
const good = `# Source: modgate/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: m
type: Opaque
data:
  tokens.json: e30=
---
# Source: modgate/templates/skipped.yaml
---
apiVersion: v1
kind: Service
metadata:
  name: m
  labels:
    app: m
spec:
  selector:
    app: m
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: m
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: m
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: m
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: m
  minReplicas: 3
  maxReplicas: 6
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 70
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: m
spec:
  selector:
    matchLabels:
      app: m
  endpoints:
    - port: http
      path: /metrics
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: m
spec:
  selector:
    matchLabels:
      app: m
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        app: m
    spec:
      enableServiceLinks: false
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    app: m
      containers:
        - name: modgate
          image: example.com/modgate:v1.2.3
          ports:
            - name: http
              containerPort: 8080
          env:
            - name: MODGATE_LISTEN
              value: ":8080"
            - name: MODGATE_SHUTDOWN_TIMEOUT
              value: 30s
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "5"]
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
          resources:
            requests:
              cpu: 250m
              memory: 256Mi
            limits:
              memory: 1Gi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: tokens
              mountPath: /etc/modgate/tokens
      volumes:
        - name: tmp
          emptyDir: {}
        - name: tokens
          secret:
            secretName: m
            items:
              - key: tokens.json
                path: tokens.json
`

func run(t *testing.T, manifests string, c *Checker) []string {
	t.Helper()
	objs, err := Decode("test.yaml", strings.NewReader(manifests))
	problems := c.Check(objs)
	if err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

func TestGoodRelease(t *testing.T) {
	known := map[string]bool{"MODGATE_LISTEN": true, "MODGATE_SHUTDOWN_TIMEOUT": true}
	if problems := run(t, good, &Checker{KnownEnv: known}); len(problems) > 0 {
		t.Fatalf("a release that should pass has problems:\n%s", strings.Join(problems, "\n"))
	}
	objs, err := Decode("test.yaml", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(objs), "Deployment, HorizontalPodAutoscaler, PodDisruptionBudget, Secret, Service, ServiceMonitor"; got != want {
		t.Errorf("decoded %s, want %s (the comment-only document is skipped)", got, want)
	}
}

// TestFindings breaks the good release in one place at a time; each break
// must be reported with a message that says what is wrong.
func TestFindings(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		knownEnv  bool
		wantFound string
	}{
		{"unknown field", "      enableServiceLinks: false\n", "      enableServiceLinks: false\n      hostNetwrok: true\n", false, `unknown field "spec.template.spec.hostNetwrok"`},
		{"duplicate field", "      enableServiceLinks: false\n", "      enableServiceLinks: false\n      enableServiceLinks: false\n", false, "enableServiceLinks"},
		{"wrong type", "              containerPort: 8080", "              containerPort: \"8080\"", false, "containerPort"},
		{"field of the wrong case", "  maxUnavailable: 1\n", "  MaxUnavailable: 1\n", false, "MaxUnavailable"},
		{"removed API version", "apiVersion: policy/v1\n", "apiVersion: policy/v1beta1\n", false, "not a kind chartcheck knows"},
		{"selector mismatch", "    matchLabels:\n      app: m\n  strategy", "    matchLabels:\n      app: other\n  strategy", false, "does not match the pod template's labels"},
		{"service selects nothing", "  selector:\n    app: m\n  ports", "  selector:\n    app: other\n  ports", false, "matches the pods of no Deployment"},
		{"service target port", "      targetPort: http", "      targetPort: web", false, `targetPort "web" is no container port`},
		{"no readiness probe", "          readinessProbe:\n            httpGet:\n              path: /readyz\n              port: http\n", "", false, "no readinessProbe"},
		{"probe port", "              path: /healthz\n              port: http", "              path: /healthz\n              port: admin", false, `livenessProbe port "admin"`},
		{"liveness on readyz", "              path: /healthz", "              path: /readyz", false, "liveness on /readyz"},
		{"root", "        runAsNonRoot: true\n        runAsUser: 65532", "        runAsUser: 0", false, "runAsNonRoot is not set"},
		{"writable root", "            readOnlyRootFilesystem: true", "            readOnlyRootFilesystem: false", false, "readOnlyRootFilesystem must be true"},
		{"capabilities", "              drop: [ALL]", "              drop: [NET_RAW]", false, "capabilities must drop ALL"},
		{"no requests", "            requests:\n              cpu: 250m\n              memory: 256Mi\n", "", false, "no cpu request"},
		{"latest image", "example.com/modgate:v1.2.3", "example.com/modgate:latest", false, "no fixed tag or digest"},
		{"service links", "      enableServiceLinks: false\n", "", false, "enableServiceLinks must be false"},
		{"grace period", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", false, "is not above preStop 5s + --shutdown-timeout 30s"},
		{"no tmp", "            - name: tmp\n              mountPath: /tmp\n", "", false, "no volume at /tmp"},
		{"missing secret key", "              - key: tokens.json", "              - key: tokens", false, `Secret/m has no key "tokens"`},
		{"unknown option", "MODGATE_LISTEN", "MODGATE_LISTN", true, "MODGATE_LISTN is not a modgate option"},
		{"budget blocks drains", "  maxUnavailable: 1\n", "  minAvailable: 3\n", false, "node drains would block"},
		{"hpa and replicas", "spec:\n  selector:\n    matchLabels:\n      app: m\n  strategy", "spec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: m\n  strategy", false, "sets replicas too"},
		{"hpa target", "    name: m\n  minReplicas", "    name: other\n  minReplicas", false, "is no object of the release"},
		{"monitor port", "    - port: http\n      path: /metrics", "    - port: metrics\n      path: /metrics", false, `endpoints[0].port "metrics"`},
		{"monitor unknown field", "      path: /metrics", "      path: /metrics\n      bearerTokenFile: /x", false, "bearerTokenFile"},
		{"rolling with capacity drop", "      maxUnavailable: 0", "      maxUnavailable: 1", false, "maxUnavailable 0"},
		{"no anti-affinity", "      affinity:\n        podAntiAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n            - weight: 100\n              podAffinityTerm:\n                topologyKey: kubernetes.io/hostname\n                labelSelector:\n                  matchLabels:\n                    app: m\n", "", false, "no pod anti-affinity"},
		{"claim with rolling update", "        - name: tmp\n          emptyDir: {}\n", "        - name: tmp\n          emptyDir: {}\n        - name: data\n          persistentVolumeClaim:\n            claimName: m\n", false, "needs strategy Recreate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("the test's text to replace is not in the good release: %q", tt.old)
			}
			var c Checker
			if tt.knownEnv {
				c.KnownEnv = map[string]bool{"MODGATE_LISTEN": true, "MODGATE_SHUTDOWN_TIMEOUT": true}
			}
			problems := run(t, strings.Replace(good, tt.old, tt.new, 1), &c)
			for _, p := range problems {
				if strings.Contains(p, tt.wantFound) {
					return
				}
			}
			t.Errorf("want a finding containing %q, got:\n%s", tt.wantFound, strings.Join(problems, "\n"))
		})
	}
}

func TestReadKnownEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "help.txt")
	help := "  --listen string\n    \taddress to serve HTTP on\n    \tenv MODGATE_LISTEN, default \":8080\"\n  --list-ttl duration\n    \tenv MODGATE_LIST_TTL, default 5m\n"
	if err := os.WriteFile(path, []byte(help), 0o600); err != nil {
		t.Fatal(err)
	}
	known, err := readKnownEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"MODGATE_LISTEN", "MODGATE_LIST_TTL", "MODGATE_S3_ACCESS_KEY"} {
		if !known[name] {
			t.Errorf("%s not known", name)
		}
	}
	if known["MODGATE_CONFIG"] {
		t.Error("MODGATE_CONFIG known without being in the help text")
	}
	if err := os.WriteFile(path, []byte("usage: something else\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readKnownEnv(path); err == nil {
		t.Error("a help text naming no variable was accepted")
	}
}
