package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest: its place in the stream and its typed
// value (a *appsv1.Deployment, a *ServiceMonitor, ...).
type Object struct {
	Source string // "file.yaml#3": the file and the document's index, from 1
	GVK    schema.GroupVersionKind
	Name   string
	Value  any
}

// Ref names the object the way findings do: "Deployment/modgate".
func (o *Object) Ref() string { return o.GVK.Kind + "/" + o.Name }

// newDecoder returns a decoder that knows the API groups a chart of a
// plain web service renders, and decodes strictly: an unknown or
// duplicated field, or a value of the wrong type, is an error, as the API
// server's strict field validation would make it.
func newDecoder() (runtime.Decoder, *runtime.Scheme) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		appsv1.AddToScheme,
		policyv1.AddToScheme,
		autoscalingv2.AddToScheme,
		networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err) // the scheme is static: a failure is a programming error
		}
	}
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	return s, scheme
}

// maxDocument bounds one YAML document; a rendered manifest is a few KiB.
const maxDocument = 4 << 20

// Decode reads a stream of YAML documents (helm template's output) and
// decodes each into its typed object. name is the stream's name in
// messages. Documents that hold only comments (helm's "# Source:" lines
// of a template that rendered nothing) are skipped.
func Decode(name string, r io.Reader) ([]*Object, error) {
	dec, scheme := newDecoder()
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var objs []*Object
	var errs []error
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return objs, fmt.Errorf("%s#%d: %v", name, i, err)
		}
		if len(doc) > maxDocument {
			return objs, fmt.Errorf("%s#%d: document larger than %d bytes", name, i, maxDocument)
		}
		if blank(doc) {
			continue
		}
		obj, err := decodeOne(dec, scheme, doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s#%d: %v", name, i, err))
			continue
		}
		obj.Source = fmt.Sprintf("%s#%d", name, i)
		objs = append(objs, obj)
	}
	return objs, errors.Join(errs...)
}

// blank reports a document of only comments and white space.
func blank(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

// typeMeta is what every document must start with.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

func decodeOne(dec runtime.Decoder, scheme *runtime.Scheme, doc []byte) (*Object, error) {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("not a YAML object: %v", err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, errors.New("apiVersion and kind are required")
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("apiVersion %q: %v", tm.APIVersion, err)
	}
	gvk := gv.WithKind(tm.Kind)
	ref := tm.Kind + "/" + tm.Metadata.Name
	if tm.Metadata.Name == "" {
		return nil, fmt.Errorf("%s: metadata.name is required", tm.Kind)
	}
	if gvk == serviceMonitorGVK {
		sm, err := decodeServiceMonitor(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", ref, err)
		}
		return &Object{GVK: gvk, Name: tm.Metadata.Name, Value: sm}, nil
	}
	if !scheme.Recognizes(gvk) {
		return nil, fmt.Errorf("%s: %s is not a kind chartcheck knows (an API version removed from Kubernetes, or a typo?)", ref, gvk)
	}
	v, _, err := dec.Decode(doc, nil, nil)
	if err != nil {
		// A strict-decoding error lists every unknown and duplicated field.
		return nil, fmt.Errorf("%s: %v", ref, err)
	}
	return &Object{GVK: gvk, Name: tm.Metadata.Name, Value: v}, nil
}

// serviceMonitorGVK is the Prometheus Operator's ServiceMonitor, a custom
// resource whose Go types chartcheck does not import.
var serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ServiceMonitor models the part of the Prometheus Operator's
// ServiceMonitor that a chart fills in; decoding is strict, so a field
// outside this model is reported and must be added here once checked
// against the operator's CRD.
type ServiceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		JobLabel          string             `json:"jobLabel,omitempty"`
		Selector          metaLabelSelector  `json:"selector"`
		NamespaceSelector *namespaceSelector `json:"namespaceSelector,omitempty"`
		Endpoints         []monitorEndpoint  `json:"endpoints"`
		SampleLimit       *int64             `json:"sampleLimit,omitempty"`
		TargetLabels      []string           `json:"targetLabels,omitempty"`
		PodTargetLabels   []string           `json:"podTargetLabels,omitempty"`
	} `json:"spec"`
}

type metaLabelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values,omitempty"`
	} `json:"matchExpressions,omitempty"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type secretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type monitorEndpoint struct {
	Port            string `json:"port,omitempty"`
	TargetPort      any    `json:"targetPort,omitempty"`
	Path            string `json:"path,omitempty"`
	Scheme          string `json:"scheme,omitempty"`
	Interval        string `json:"interval,omitempty"`
	ScrapeTimeout   string `json:"scrapeTimeout,omitempty"`
	HonorLabels     bool   `json:"honorLabels,omitempty"`
	FollowRedirects *bool  `json:"followRedirects,omitempty"`
	Authorization   *struct {
		Type        string             `json:"type,omitempty"`
		Credentials *secretKeySelector `json:"credentials,omitempty"`
	} `json:"authorization,omitempty"`
	BearerTokenSecret *secretKeySelector `json:"bearerTokenSecret,omitempty"`
	TLSConfig         *struct {
		CA                 *secretOrConfigMap `json:"ca,omitempty"`
		Cert               *secretOrConfigMap `json:"cert,omitempty"`
		KeySecret          *secretKeySelector `json:"keySecret,omitempty"`
		ServerName         string             `json:"serverName,omitempty"`
		InsecureSkipVerify bool               `json:"insecureSkipVerify,omitempty"`
	} `json:"tlsConfig,omitempty"`
	RelabelConfigs       []map[string]any `json:"relabelings,omitempty"`
	MetricRelabelConfigs []map[string]any `json:"metricRelabelings,omitempty"`
}

type secretOrConfigMap struct {
	Secret    *secretKeySelector `json:"secret,omitempty"`
	ConfigMap *secretKeySelector `json:"configMap,omitempty"`
}

// decodeServiceMonitor decodes strictly into the model above and checks
// what the operator's CRD requires of what the model holds.
func decodeServiceMonitor(doc []byte) (*ServiceMonitor, error) {
	var sm ServiceMonitor
	if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
		return nil, err
	}
	var problems []string
	if len(sm.Spec.Endpoints) == 0 {
		problems = append(problems, "spec.endpoints is empty: nothing would be scraped")
	}
	if len(sm.Spec.Selector.MatchLabels) == 0 && len(sm.Spec.Selector.MatchExpressions) == 0 {
		problems = append(problems, "spec.selector is empty: it would select every Service of the namespace")
	}
	for i, ep := range sm.Spec.Endpoints {
		if (ep.Port == "") == (ep.TargetPort == nil) {
			problems = append(problems, fmt.Sprintf("spec.endpoints[%d]: set exactly one of port and targetPort", i))
		}
		if ep.Scheme != "" && ep.Scheme != "http" && ep.Scheme != "https" {
			problems = append(problems, fmt.Sprintf("spec.endpoints[%d].scheme %q: want http or https", i, ep.Scheme))
		}
		if a := ep.Authorization; a != nil && a.Credentials != nil && (a.Credentials.Name == "" || a.Credentials.Key == "") {
			problems = append(problems, fmt.Sprintf("spec.endpoints[%d].authorization.credentials needs name and key", i))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return &sm, nil
}
