package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Checker holds what the semantic checks need beyond the manifests.
type Checker struct {
	// KnownEnv, when not nil, is the set of MODGATE_* variables modgate
	// accepts: it refuses to start on any other, so a chart that sets one
	// (a renamed flag, a typo) would crash-loop.
	KnownEnv map[string]bool
}

// defaultShutdownTimeout is modgate's --shutdown-timeout default.
const defaultShutdownTimeout = 30 * time.Second

// Check runs the semantic checks on one rendered release and returns
// its findings, each naming the object ("Deployment/modgate: ...").
func (c *Checker) Check(objs []*Object) []string {
	var f findings
	set := index(objs)
	for _, o := range objs {
		switch v := o.Value.(type) {
		case *appsv1.Deployment:
			c.checkDeployment(&f, o, v, set)
		case *corev1.Service:
			checkService(&f, o, v, set)
		case *policyv1.PodDisruptionBudget:
			checkPDB(&f, o, v, set)
		case *autoscalingv2.HorizontalPodAutoscaler:
			checkHPA(&f, o, v, set)
		case *ServiceMonitor:
			checkServiceMonitor(&f, o, v, set)
		}
	}
	return f.list
}

type findings struct{ list []string }

func (f *findings) add(o *Object, format string, args ...any) {
	f.list = append(f.list, o.Ref()+": "+fmt.Sprintf(format, args...))
}

// objectSet finds objects of the release by kind and name.
type objectSet map[string]*Object

func index(objs []*Object) objectSet {
	s := objectSet{}
	for _, o := range objs {
		s[o.Ref()] = o
	}
	return s
}

func (s objectSet) deployments() []*appsv1.Deployment {
	var ds []*appsv1.Deployment
	for _, o := range s {
		if d, ok := o.Value.(*appsv1.Deployment); ok {
			ds = append(ds, d)
		}
	}
	return ds
}

// podsSelected returns the Deployments whose pods sel selects.
func (s objectSet) podsSelected(sel labels.Selector) []*appsv1.Deployment {
	var ds []*appsv1.Deployment
	for _, d := range s.deployments() {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			ds = append(ds, d)
		}
	}
	return ds
}

func (c *Checker) checkDeployment(f *findings, o *Object, d *appsv1.Deployment, set objectSet) {
	spec := &d.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	switch {
	case err != nil:
		f.add(o, "spec.selector: %v", err)
	case sel.Empty():
		f.add(o, "spec.selector is empty")
	case !sel.Matches(labels.Set(d.Spec.Template.Labels)):
		f.add(o, "spec.selector %s does not match the pod template's labels %v", sel, d.Spec.Template.Labels)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if hpa := set.hpaFor(d.Name); hpa != nil {
		replicas = hpa.Spec.MaxReplicas
	}

	// A ReadWriteOnce claim can be attached to one node: a second pod (a
	// replica, or the new pod of a rolling update) would hang in
	// ContainerCreating, or two writers would share the files.
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		if replicas > 1 {
			f.add(o, "volume %s: a PersistentVolumeClaim shared by %d replicas", v.Name, replicas)
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			f.add(o, "volume %s: a PersistentVolumeClaim needs strategy Recreate (a rolling update starts the new pod while the old one holds the claim)", v.Name)
		}
	}
	if replicas > 1 {
		if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
			if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxUnavailable.Type != intstr.Int {
				f.add(o, "a replicated Deployment should roll with maxUnavailable 0, so that capacity never drops during an upgrade")
			}
		}
		if !set.hasPDBFor(d) {
			f.add(o, "%d replicas and no PodDisruptionBudget: a node drain may stop them all at once", replicas)
		}
		if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
			f.add(o, "%d replicas and no pod anti-affinity: they may all land on one node", replicas)
		}
	}

	// modgate reads MODGATE_* variables and refuses unknown ones; the
	// service links Kubernetes adds for a Service named "modgate"
	// (MODGATE_PORT, MODGATE_SERVICE_HOST, ...) would stop it.
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		f.add(o, "enableServiceLinks must be false: the variables it adds for a Service named modgate look like modgate options")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		f.add(o, "automountServiceAccountToken should be false: modgate never calls the Kubernetes API")
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	volumes := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if volumes[v.Name] != nil {
			f.add(o, "volume %s declared twice", v.Name)
		}
		volumes[v.Name] = v
		checkVolumeSource(f, o, v, set)
	}
	if len(spec.Containers) == 0 {
		f.add(o, "no containers")
	}
	for i := range spec.InitContainers {
		c.checkContainer(f, o, d, &spec.InitContainers[i], psc, volumes, false)
	}
	for i := range spec.Containers {
		c.checkContainer(f, o, d, &spec.Containers[i], psc, volumes, true)
	}
}

func (c *Checker) checkContainer(f *findings, o *Object, d *appsv1.Deployment, ctr *corev1.Container, psc *corev1.PodSecurityContext, volumes map[string]*corev1.Volume, main bool) {
	where := "container " + ctr.Name
	if ctr.Image == "" {
		f.add(o, "%s: no image", where)
	} else if ref := ctr.Image; !strings.Contains(ref, "@") && (strings.HasSuffix(ref, ":latest") || !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":")) {
		f.add(o, "%s: image %q has no fixed tag or digest", where, ref)
	}

	// Security: non-root, no privilege escalation, read-only root file
	// system, no capabilities.
	sc := ctr.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	runAsNonRoot := firstBool(sc.RunAsNonRoot, psc.RunAsNonRoot)
	if runAsNonRoot == nil || !*runAsNonRoot {
		f.add(o, "%s: runAsNonRoot is not set", where)
	}
	if uid := firstInt64(sc.RunAsUser, psc.RunAsUser); uid != nil && *uid == 0 {
		f.add(o, "%s: runs as uid 0", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		f.add(o, "%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		f.add(o, "%s: privileged", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		f.add(o, "%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		f.add(o, "%s: capabilities must drop ALL", where)
	} else if len(sc.Capabilities.Add) > 0 {
		f.add(o, "%s: adds capabilities %v", where, sc.Capabilities.Add)
	}

	// Resources: requests let the scheduler place the pod and the HPA
	// compute utilization; a memory limit bounds a leak to one pod.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := ctr.Resources.Requests[r]; !ok || q.IsZero() {
			f.add(o, "%s: no %s request", where, r)
		}
	}
	if q, ok := ctr.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		f.add(o, "%s: no memory limit", where)
	} else if req, ok := ctr.Resources.Requests[corev1.ResourceMemory]; ok && q.Cmp(req) < 0 {
		f.add(o, "%s: memory limit %s below its request %s", where, q.String(), req.String())
	}

	mounts := map[string]bool{}
	for _, m := range ctr.VolumeMounts {
		if volumes[m.Name] == nil {
			f.add(o, "%s: volumeMount %s names no volume of the pod", where, m.Name)
		}
		if mounts[m.MountPath] {
			f.add(o, "%s: two volumes mounted at %s", where, m.MountPath)
		}
		mounts[m.MountPath] = true
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem && !mounts["/tmp"] {
		f.add(o, "%s: read-only root file system and no volume at /tmp (git and the go toolchain's helpers write there)", where)
	}

	env := map[string]string{}
	for _, e := range ctr.Env {
		if _, dup := env[e.Name]; dup {
			f.add(o, "%s: env %s set twice (the last one wins, silently)", where, e.Name)
		}
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "MODGATE_") && c.KnownEnv != nil && !c.KnownEnv[e.Name] {
			f.add(o, "%s: env %s is not a modgate option (modgate refuses to start with it)", where, e.Name)
		}
		if e.ValueFrom != nil && e.Value != "" {
			f.add(o, "%s: env %s has both value and valueFrom", where, e.Name)
		}
	}
	if !main {
		return
	}

	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", ctr.LivenessProbe}, {"readinessProbe", ctr.ReadinessProbe}} {
		if p.probe == nil {
			f.add(o, "%s: no %s", where, p.name)
			continue
		}
		if g := p.probe.HTTPGet; g != nil && g.Port.Type == intstr.String {
			if _, ok := ports[g.Port.StrVal]; !ok {
				f.add(o, "%s: %s port %q is no port of the container", where, p.name, g.Port.StrVal)
			}
		}
	}
	if l, r := ctr.LivenessProbe, ctr.ReadinessProbe; l != nil && r != nil && l.HTTPGet != nil && r.HTTPGet != nil && l.HTTPGet.Path == r.HTTPGet.Path && l.HTTPGet.Path == "/readyz" {
		f.add(o, "%s: liveness on /readyz restarts replicas for a storage outage a restart cannot mend", where)
	}

	// The pod's grace period must outlast the preStop pause and modgate's
	// own drain (--shutdown-timeout), or the kubelet kills downloads that
	// modgate would have finished.
	shutdown := defaultShutdownTimeout
	if v, ok := env["MODGATE_SHUTDOWN_TIMEOUT"]; ok {
		dur, err := time.ParseDuration(v)
		if err != nil {
			f.add(o, "%s: MODGATE_SHUTDOWN_TIMEOUT %q: %v", where, v, err)
		}
		shutdown = dur
	}
	var preStop time.Duration
	if ls := ctr.Lifecycle; ls != nil && ls.PreStop != nil {
		switch {
		case ls.PreStop.Sleep != nil:
			preStop = time.Duration(ls.PreStop.Sleep.Seconds) * time.Second
		case ls.PreStop.Exec != nil && len(ls.PreStop.Exec.Command) == 2 && ls.PreStop.Exec.Command[0] == "sleep":
			n, err := strconv.Atoi(ls.PreStop.Exec.Command[1])
			if err != nil {
				f.add(o, "%s: preStop sleep %q: not whole seconds", where, ls.PreStop.Exec.Command[1])
			}
			preStop = time.Duration(n) * time.Second
		}
	}
	grace := 30 * time.Second
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= preStop+shutdown {
		f.add(o, "terminationGracePeriodSeconds %v is not above preStop %v + --shutdown-timeout %v", grace, preStop, shutdown)
	}
}

// checkVolumeSource checks that a volume taken from an object of the
// release (Secret, ConfigMap, claim) names one, with the keys it projects.
// Objects the release does not render are the operator's: not checked.
func checkVolumeSource(f *findings, o *Object, v *corev1.Volume, set objectSet) {
	var keys []string
	var ref string
	var have func(string) bool
	switch {
	case v.Secret != nil:
		ref = "Secret/" + v.Secret.SecretName
		for _, it := range v.Secret.Items {
			keys = append(keys, it.Key)
		}
		if s, ok := set[ref]; ok {
			sec := s.Value.(*corev1.Secret)
			have = func(k string) bool { _, a := sec.Data[k]; _, b := sec.StringData[k]; return a || b }
		}
	case v.ConfigMap != nil:
		ref = "ConfigMap/" + v.ConfigMap.Name
		for _, it := range v.ConfigMap.Items {
			keys = append(keys, it.Key)
		}
		if s, ok := set[ref]; ok {
			cm := s.Value.(*corev1.ConfigMap)
			have = func(k string) bool { _, a := cm.Data[k]; _, b := cm.BinaryData[k]; return a || b }
		}
	default:
		return
	}
	if have == nil {
		return
	}
	for _, k := range keys {
		if !have(k) {
			f.add(o, "volume %s: %s has no key %q", v.Name, ref, k)
		}
	}
}

func (s objectSet) hpaFor(deployment string) *autoscalingv2.HorizontalPodAutoscaler {
	for _, o := range s {
		if h, ok := o.Value.(*autoscalingv2.HorizontalPodAutoscaler); ok &&
			h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == deployment {
			return h
		}
	}
	return nil
}

func (s objectSet) hasPDBFor(d *appsv1.Deployment) bool {
	for _, o := range s {
		p, ok := o.Value.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return true
		}
	}
	return false
}

func checkService(f *findings, o *Object, svc *corev1.Service, set objectSet) {
	if len(svc.Spec.Selector) == 0 {
		f.add(o, "no selector")
		return
	}
	ds := set.podsSelected(labels.SelectorFromSet(svc.Spec.Selector))
	if len(ds) == 0 {
		f.add(o, "selector %v matches the pods of no Deployment of the release", svc.Spec.Selector)
		return
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.Type != intstr.String {
			continue
		}
		for _, d := range ds {
			if !hasContainerPort(d, p.TargetPort.StrVal) {
				f.add(o, "port %s: targetPort %q is no container port of Deployment/%s", p.Name, p.TargetPort.StrVal, d.Name)
			}
		}
	}
}

func hasContainerPort(d *appsv1.Deployment, name string) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func checkPDB(f *findings, o *Object, p *policyv1.PodDisruptionBudget, set objectSet) {
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		f.add(o, "set exactly one of minAvailable and maxUnavailable")
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil || sel.Empty() {
		f.add(o, "selector missing or invalid (%v)", err)
		return
	}
	ds := set.podsSelected(sel)
	if len(ds) == 0 {
		f.add(o, "selector %s matches the pods of no Deployment of the release", sel)
		return
	}
	for _, d := range ds {
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if h := set.hpaFor(d.Name); h != nil && h.Spec.MinReplicas != nil {
			replicas = *h.Spec.MinReplicas
		}
		// A budget that allows no disruption at the Deployment's size
		// blocks every node drain.
		switch {
		case p.Spec.MinAvailable != nil && p.Spec.MinAvailable.Type == intstr.Int && p.Spec.MinAvailable.IntVal >= replicas:
			f.add(o, "minAvailable %d with %d replicas of Deployment/%s: node drains would block", p.Spec.MinAvailable.IntVal, replicas, d.Name)
		case p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.Type == intstr.Int && p.Spec.MaxUnavailable.IntVal < 1:
			f.add(o, "maxUnavailable %d: node drains would block", p.Spec.MaxUnavailable.IntVal)
		}
	}
}

func checkHPA(f *findings, o *Object, h *autoscalingv2.HorizontalPodAutoscaler, set objectSet) {
	ref := h.Spec.ScaleTargetRef
	target, ok := set[ref.Kind+"/"+ref.Name]
	if !ok || ref.APIVersion != "apps/v1" {
		f.add(o, "scaleTargetRef %s %s/%s is no object of the release", ref.APIVersion, ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		f.add(o, "minReplicas %d above maxReplicas %d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) == 0 {
		f.add(o, "no metrics")
	}
	d, isDeployment := (*appsv1.Deployment)(nil), false
	if ok {
		d, isDeployment = target.Value.(*appsv1.Deployment)
	}
	if isDeployment && d.Spec.Replicas != nil {
		f.add(o, "Deployment/%s sets replicas too: every helm upgrade would reset the autoscaler's count", d.Name)
	}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil || !isDeployment {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if _, ok := c.Resources.Requests[m.Resource.Name]; !ok {
				f.add(o, "scales on %s utilization, but container %s requests no %s", m.Resource.Name, c.Name, m.Resource.Name)
			}
		}
	}
}

func checkServiceMonitor(f *findings, o *Object, sm *ServiceMonitor, set objectSet) {
	sel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
	var svcs []*corev1.Service
	for _, other := range set {
		if svc, ok := other.Value.(*corev1.Service); ok && sel.Matches(labels.Set(svc.Labels)) {
			svcs = append(svcs, svc)
		}
	}
	if len(svcs) == 0 {
		f.add(o, "selector %v matches no Service of the release", sm.Spec.Selector.MatchLabels)
		return
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Port == "" {
			continue
		}
		for _, svc := range svcs {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				f.add(o, "endpoints[%d].port %q is no port of Service/%s", i, ep.Port, svc.Name)
			}
		}
	}
}

func firstBool(vs ...*bool) *bool {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func firstInt64(vs ...*int64) *int64 {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}
