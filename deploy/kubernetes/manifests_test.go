package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// object is one decoded manifest document.
type object struct {
	file string
	doc  int
	kind string
	meta metav1.ObjectMeta
	obj  any
}

func (o object) String() string {
	return fmt.Sprintf("%s#%d %s %s/%s", o.file, o.doc, o.kind, o.meta.Namespace, o.meta.Name)
}

// kinds maps apiVersion/kind to a new typed object.
var kinds = map[string]func() any{
	"v1/Namespace":                  func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                     func() any { return &corev1.Secret{} },
	"v1/Service":                    func() any { return &corev1.Service{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStrict decodes one document into its k8s.io/api type, refusing
// unknown or duplicate fields.
func decodeStrict(doc []byte) (string, any, error) {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return "", nil, err
	}
	key := tm.APIVersion + "/" + tm.Kind
	mk, ok := kinds[key]
	if !ok {
		return "", nil, fmt.Errorf("apiVersion %q kind %q: not a kind this test knows", tm.APIVersion, tm.Kind)
	}
	obj := mk()
	if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
		return "", nil, err
	}
	return tm.Kind, obj, nil
}

// splitDocs splits a multi-document file on "---" lines, dropping
// documents that hold only comments.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range docSep.Split(string(b), -1) {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(d), &n); err == nil && len(n.Content) == 0 {
			continue
		}
		out = append(out, []byte(d))
	}
	return out
}

func loadAll(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("manifests: %v %v", files, err)
	}
	var objs []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range splitDocs(b) {
			kind, obj, err := decodeStrict(d)
			if err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
				continue
			}
			meta := obj.(metav1.Object)
			om := metav1.ObjectMeta{Name: meta.GetName(), Namespace: meta.GetNamespace(), Labels: meta.GetLabels()}
			objs = append(objs, object{file: f, doc: i, kind: kind, meta: om, obj: obj})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return objs
}

// TestStrictDecodeRejectsTypos: the decoder this test relies on does fail
// on a misspelled field, a misplaced one and a wrong type.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	b, err := os.ReadFile("server.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := splitDocs(b)
	var sts []byte
	for _, d := range docs {
		if bytes.Contains(d, []byte("kind: StatefulSet")) {
			sts = d
		}
	}
	if sts == nil {
		t.Fatal("server.yaml has no StatefulSet")
	}
	if _, _, err := decodeStrict(sts); err != nil {
		t.Fatalf("the shipped StatefulSet does not decode: %v", err)
	}
	for name, edit := range map[string][2]string{
		"misspelled field":    {"readinessProbe:", "readynessProbe:"},
		"field one level off": {"      terminationGracePeriodSeconds: 30", "      terminationGracePeriodSeconds: 30\n      serviceName: x"},
		"wrong type":          {"replicas: 3", "replicas: three"},
	} {
		bad := bytes.Replace(sts, []byte(edit[0]), []byte(edit[1]), 1)
		if bytes.Equal(bad, sts) {
			t.Fatalf("%s: %q not found in the StatefulSet", name, edit[0])
		}
		if _, _, err := decodeStrict(bad); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// podTemplate is a workload's pod template with where it came from.
type podTemplate struct {
	owner object
	spec  corev1.PodTemplateSpec
}

func templates(objs []object) []podTemplate {
	var out []podTemplate
	for _, o := range objs {
		switch w := o.obj.(type) {
		case *appsv1.StatefulSet:
			out = append(out, podTemplate{o, w.Spec.Template})
		case *appsv1.Deployment:
			out = append(out, podTemplate{o, w.Spec.Template})
		}
	}
	return out
}

func find[T any](objs []object, kind, ns, name string) (T, bool) {
	var zero T
	for _, o := range objs {
		if o.kind == kind && o.meta.Namespace == ns && o.meta.Name == name {
			return o.obj.(T), true
		}
	}
	return zero, false
}

// readmeSecrets are the Secrets README.md tells the operator to create
// (namespace/name), which the manifests reference but do not ship.
func readmeSecrets(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`kubectl -n (\S+) create secret \S+ (\S+)`)
	out := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out[m[1]+"/"+m[2]] = true
	}
	return out
}

// TestCrossReferences: every name one manifest uses in another resolves.
func TestCrossReferences(t *testing.T) {
	objs := loadAll(t)
	secrets := readmeSecrets(t)
	for _, o := range objs {
		if o.kind != "Namespace" && o.meta.Namespace == "" {
			t.Errorf("%v: no namespace", o)
		}
		if s, ok := o.obj.(*corev1.Secret); ok {
			secrets[s.Namespace+"/"+s.Name] = true
		}
	}
	if _, ok := find[*corev1.Namespace](objs, "Namespace", "", "stillpoint"); !ok {
		t.Error("no Namespace stillpoint")
	}

	for _, pt := range templates(objs) {
		ns := pt.owner.meta.Namespace
		checkSelector(t, pt)
		checkPod(t, objs, secrets, ns, pt)
	}
	for _, o := range objs {
		switch x := o.obj.(type) {
		case *corev1.Service:
			checkService(t, objs, o, x)
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(x.Spec.Selector)
			if err != nil {
				t.Errorf("%v: selector: %v", o, err)
				continue
			}
			if n := len(matching(objs, x.Namespace, sel)); n == 0 {
				t.Errorf("%v: selects no pod template", o)
			}
		}
	}
}

func checkSelector(t *testing.T, pt podTemplate) {
	var sel *metav1.LabelSelector
	switch w := pt.owner.obj.(type) {
	case *appsv1.StatefulSet:
		sel = w.Spec.Selector
	case *appsv1.Deployment:
		sel = w.Spec.Selector
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(labels.Set(pt.spec.Labels)) {
		t.Errorf("%v: selector %v does not match its template's labels %v (%v)", pt.owner, sel, pt.spec.Labels, err)
	}
}

func matching(objs []object, ns string, sel labels.Selector) []podTemplate {
	var out []podTemplate
	for _, pt := range templates(objs) {
		if pt.owner.meta.Namespace == ns && sel.Matches(labels.Set(pt.spec.Labels)) {
			out = append(out, pt)
		}
	}
	return out
}

// containerPort finds a declared port by name or number (and protocol).
func containerPort(pods []corev1.Container, p intstr.IntOrString, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range pods {
		for _, cp := range c.Ports {
			pp := cp.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp != proto {
				continue
			}
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return true
			}
		}
	}
	return false
}

func checkService(t *testing.T, objs []object, o object, svc *corev1.Service) {
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if len(svc.Spec.Selector) == 0 {
		t.Errorf("%v: no selector", o)
		return
	}
	pods := matching(objs, svc.Namespace, sel)
	if len(pods) == 0 {
		t.Errorf("%v: selector %v matches no pod template", o, svc.Spec.Selector)
		return
	}
	for _, pt := range pods {
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if !containerPort(pt.spec.Spec.Containers, target, p.Protocol) {
				t.Errorf("%v: port %s targets %s/%s, not a declared port of %v", o, p.Name, target.String(), p.Protocol, pt.owner)
			}
		}
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func checkPod(t *testing.T, objs []object, secrets map[string]bool, ns string, pt podTemplate) {
	who := pt.owner.String()
	volumes := map[string]corev1.Volume{}
	for _, v := range pt.spec.Spec.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			if _, ok := find[*corev1.ConfigMap](objs, "ConfigMap", ns, v.ConfigMap.Name); !ok {
				t.Errorf("%s: volume %s: ConfigMap %s/%s is not defined", who, v.Name, ns, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if !secrets[ns+"/"+v.Secret.SecretName] {
				t.Errorf("%s: volume %s: Secret %s/%s is neither shipped nor created in README.md", who, v.Name, ns, v.Secret.SecretName)
			}
		}
	}
	claims := map[string]bool{}
	if sts, ok := pt.owner.obj.(*appsv1.StatefulSet); ok {
		for _, c := range sts.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
		}
	}
	for _, c := range pt.spec.Spec.Containers {
		for _, m := range c.VolumeMounts {
			v, ok := volumes[m.Name]
			if !ok && !claims[m.Name] {
				t.Errorf("%s: container %s mounts %s: no such volume or claim template", who, c.Name, m.Name)
				continue
			}
			if m.SubPath != "" && v.ConfigMap != nil {
				cm, _ := find[*corev1.ConfigMap](objs, "ConfigMap", ns, v.ConfigMap.Name)
				if cm != nil {
					if _, ok := cm.Data[m.SubPath]; !ok {
						t.Errorf("%s: container %s mounts key %s of ConfigMap %s, which has no such key", who, c.Name, m.SubPath, cm.Name)
					}
				}
			}
		}
		defined := map[string]bool{}
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && !secrets[ns+"/"+r.SecretKeyRef.Name] {
				t.Errorf("%s: container %s env %s: Secret %s/%s is neither shipped nor created in README.md", who, c.Name, e.Name, ns, r.SecretKeyRef.Name)
			}
			for _, m := range envRef.FindAllStringSubmatch(e.Value, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: container %s env %s uses $(%s) before it is defined", who, c.Name, e.Name, m[1])
				}
			}
			defined[e.Name] = true
		}
		for _, a := range slices.Concat(c.Command, c.Args) {
			for _, m := range envRef.FindAllStringSubmatch(a, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: container %s arg %q uses $(%s), which its env does not define (Kubernetes would pass it literally)", who, c.Name, a, m[1])
				}
			}
		}
		for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
			if p == nil {
				continue
			}
			if p.HTTPGet == nil {
				t.Errorf("%s: container %s %s probe is not an HTTP GET", who, c.Name, what)
				continue
			}
			if !containerPort([]corev1.Container{c}, p.HTTPGet.Port, corev1.ProtocolTCP) {
				t.Errorf("%s: container %s %s probe port %s is not one of its declared TCP ports", who, c.Name, what, p.HTTPGet.Port.String())
			}
		}
	}
}

// serverConfig is the part of the ConfigMap's server.yaml checked here
// (cmd/stillpoint loads the whole file with the server's own loader).
type serverConfig struct {
	BootstrapExpect int `yaml:"bootstrap_expect"`
	Gossip          struct {
		Join []string `yaml:"join"`
	} `yaml:"gossip"`
	MetricsListen    string `yaml:"metrics_listen"`
	LeaveOnTerminate bool   `yaml:"leave_on_terminate"`
}

// TestServerStatefulSet: the coordinator's shape: 3 replicas started in
// parallel (none is ready before bootstrap), bootstrap_expect equal to the
// replicas, the gossip seeds exactly the pods' stable DNS names, a headless
// governing Service that publishes not-ready addresses, a PVC per pod,
// probes on /readyz and /healthz on the port the config serves them on,
// and a PodDisruptionBudget of one.
func TestServerStatefulSet(t *testing.T) {
	objs := loadAll(t)
	const ns, name = "stillpoint", "stillpoint-server"
	sts, ok := find[*appsv1.StatefulSet](objs, "StatefulSet", ns, name)
	if !ok {
		t.Fatalf("no StatefulSet %s/%s", ns, name)
	}
	replicas := int(*sts.Spec.Replicas)
	if replicas != 3 {
		t.Errorf("replicas %d, want 3", replicas)
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: with OrderedReady, pod 1 waits for pod 0 to be ready, which needs a bootstrapped cluster", sts.Spec.PodManagementPolicy)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("%d volumeClaimTemplates, want 1 (the Raft log)", len(sts.Spec.VolumeClaimTemplates))
	}
	svc, ok := find[*corev1.Service](objs, "Service", ns, sts.Spec.ServiceName)
	if !ok {
		t.Fatalf("serviceName %s: no such Service", sts.Spec.ServiceName)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q publishNotReadyAddresses %v; want a headless Service that publishes not-ready pods (the seeds must resolve before any is ready)",
			svc.Name, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	cm, ok := find[*corev1.ConfigMap](objs, "ConfigMap", ns, name)
	if !ok {
		t.Fatalf("no ConfigMap %s", name)
	}
	var cfg serverConfig
	if err := yaml.Unmarshal([]byte(cm.Data["server.yaml"]), &cfg); err != nil {
		t.Fatalf("ConfigMap %s server.yaml: %v", name, err)
	}
	if cfg.BootstrapExpect != replicas {
		t.Errorf("bootstrap_expect %d, replicas %d", cfg.BootstrapExpect, replicas)
	}
	if cfg.LeaveOnTerminate {
		t.Error("leave_on_terminate: a rolling update would remove every server from Raft")
	}
	c := sts.Spec.Template.Spec.Containers[0]
	gossipPort := portNumber(t, c, "gossip-tcp")
	var want []string
	for i := range replicas {
		want = append(want, fmt.Sprintf("%s-%d.%s.%s.svc:%d", sts.Name, i, svc.Name, ns, gossipPort))
	}
	if !slices.Equal(cfg.Gossip.Join, want) {
		t.Errorf("gossip.join %v, want the pods' names %v", cfg.Gossip.Join, want)
	}
	for _, pt := range templates(objs) {
		for _, ac := range pt.spec.Spec.Containers {
			if pt.owner.meta.Name == name {
				continue
			}
			for _, vol := range pt.spec.Spec.Volumes {
				if vol.ConfigMap == nil {
					continue
				}
				acm, _ := find[*corev1.ConfigMap](objs, "ConfigMap", pt.owner.meta.Namespace, vol.ConfigMap.Name)
				if acm == nil || acm.Data["agent.yaml"] == "" {
					continue
				}
				var a struct {
					Gossip struct {
						Join []string `yaml:"join"`
					} `yaml:"gossip"`
				}
				if err := yaml.Unmarshal([]byte(acm.Data["agent.yaml"]), &a); err != nil {
					t.Fatalf("ConfigMap %s agent.yaml: %v", acm.Name, err)
				}
				if !slices.Equal(a.Gossip.Join, want) {
					t.Errorf("%v container %s: gossip.join %v, want the servers %v", pt.owner, ac.Name, a.Gossip.Join, want)
				}
			}
		}
	}

	// Probes: /readyz and /healthz on the port metrics_listen binds.
	_, mport, err := splitHostPort(cfg.MetricsListen)
	if err != nil {
		t.Fatalf("metrics_listen %q: %v", cfg.MetricsListen, err)
	}
	if host, _, _ := splitHostPort(cfg.MetricsListen); host != "0.0.0.0" {
		t.Errorf("metrics_listen %q: kubelet probes the pod IP; bind 0.0.0.0", cfg.MetricsListen)
	}
	for what, p := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe missing", what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probe path %s, want %s", what, p.probe.HTTPGet.Path, p.path)
		}
		if got := portNumber(t, c, p.probe.HTTPGet.Port.String()); got != mport {
			t.Errorf("%s probe port %d, but metrics_listen serves %d", what, got, mport)
		}
	}

	pdb, ok := find[*policyv1.PodDisruptionBudget](objs, "PodDisruptionBudget", ns, name)
	if !ok {
		t.Fatal("no PodDisruptionBudget")
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
}

// TestAgentSidecars: each agent reaches its node's admin port on
// localhost, and that is the port the node container declares (Ledger
// 50053, Auditor 40053).
func TestAgentSidecars(t *testing.T) {
	objs := loadAll(t)
	wantPort := map[string]int{"ledger": 50053, "auditor": 40053}
	seen := map[string]bool{}
	for _, pt := range templates(objs) {
		var agent *corev1.Container
		for i, c := range pt.spec.Spec.Containers {
			if c.Name == "stillpoint-agent" {
				agent = &pt.spec.Spec.Containers[i]
			}
		}
		if agent == nil {
			continue
		}
		var cfg struct {
			Role  string `yaml:"role"`
			Admin struct {
				Address string `yaml:"address"`
			} `yaml:"admin"`
		}
		for _, v := range pt.spec.Spec.Volumes {
			if v.ConfigMap == nil {
				continue
			}
			if cm, ok := find[*corev1.ConfigMap](objs, "ConfigMap", pt.owner.meta.Namespace, v.ConfigMap.Name); ok && cm.Data["agent.yaml"] != "" {
				if err := yaml.Unmarshal([]byte(cm.Data["agent.yaml"]), &cfg); err != nil {
					t.Fatal(err)
				}
			}
		}
		seen[cfg.Role] = true
		host, port, err := splitHostPort(cfg.Admin.Address)
		if err != nil || host != "127.0.0.1" || port != wantPort[cfg.Role] {
			t.Errorf("%v: role %s admin.address %q, want 127.0.0.1:%d", pt.owner, cfg.Role, cfg.Admin.Address, wantPort[cfg.Role])
		}
		node := false
		for _, c := range pt.spec.Spec.Containers {
			if c.Name != agent.Name && containerPort([]corev1.Container{c}, intstr.FromInt(port), corev1.ProtocolTCP) {
				node = true
			}
		}
		if !node {
			t.Errorf("%v: no other container declares the admin port %d", pt.owner, port)
		}
	}
	for role := range wantPort {
		if !seen[role] {
			t.Errorf("no %s pod with a stillpoint-agent sidecar", role)
		}
	}
}

func portNumber(t *testing.T, c corev1.Container, name string) int {
	t.Helper()
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, name)
	return 0
}

func splitHostPort(hp string) (string, int, error) {
	i := strings.LastIndex(hp, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", hp)
	}
	p, err := strconv.Atoi(hp[i+1:])
	return hp[:i], p, err
}
