// Package k8s holds the kustomization of mgrplane on Kubernetes
// (`kubectl apply -k deploy/k8s`) and its test: no cluster runs here, so the
// test renders the kustomization with the kustomize Go API, decodes every
// object strictly into the k8s.io/api types (an unknown or misspelt field
// fails), and checks that ports, labels, selectors, probes and flags agree
// with each other and with the binaries (their -h output).
package k8s

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/creds"
	"github.com/mgrplane/mgrplane/services/monsim"
)

// The mount point of the credentials Secret (MGRPLANE_CREDS).
const credsDir = "/etc/mgrplane/creds"

// objects are the rendered objects, by kind and name.
type objects struct {
	namespaces   map[string]*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      map[string]*networkingv1.NetworkPolicy
}

// render runs the kustomization of this directory, in a copy with the
// credentials scripts/k8s-creds.sh makes (as a user runs it before kubectl
// apply -k), and decodes every object strictly. It returns the creds dir.
func render(t *testing.T) (*objects, string) {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("*.y*ml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "mgrplane.env") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	made := filepath.Join(dir, "creds")
	script := exec.Command(filepath.Join("..", "..", "scripts", "k8s-creds.sh"), made)
	script.Env = append(os.Environ(), "MONSIM="+binPath(t, "monsim"))
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("scripts/k8s-creds.sh: %v\n%s", err, out)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	o := &objects{
		namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, services: map[string]*corev1.Service{},
		statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, netpols: map[string]*networkingv1.NetworkPolicy{},
	}
	for _, r := range rm.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		gvk := r.GetGvk()
		apiVersion := gvk.ApiVersion()
		var meta *metav1.ObjectMeta
		var into any
		var store func()
		switch apiVersion + "/" + gvk.Kind {
		case "v1/Namespace":
			x := &corev1.Namespace{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.namespaces[x.Name] = x }
		case "v1/ConfigMap":
			x := &corev1.ConfigMap{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.configMaps[x.Name] = x }
		case "v1/Secret":
			x := &corev1.Secret{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.secrets[x.Name] = x }
		case "v1/Service":
			x := &corev1.Service{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.services[x.Name] = x }
		case "apps/v1/StatefulSet":
			x := &appsv1.StatefulSet{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.statefulSets[x.Name] = x }
		case "apps/v1/Deployment":
			x := &appsv1.Deployment{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.deployments[x.Name] = x }
		case "policy/v1/PodDisruptionBudget":
			x := &policyv1.PodDisruptionBudget{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.pdbs[x.Name] = x }
		case "networking.k8s.io/v1/NetworkPolicy":
			x := &networkingv1.NetworkPolicy{}
			into, meta = x, &x.ObjectMeta
			store = func() { o.netpols[x.Name] = x }
		default:
			t.Fatalf("%s: kind %s %s is not one the test knows: add it to render", r.CurId(), apiVersion, gvk.Kind)
		}
		strict, err := sigsjson.UnmarshalStrict(raw, into)
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		if len(strict) > 0 {
			t.Fatalf("%s: not a valid %s: %v", r.CurId(), gvk.Kind, strict)
		}
		store()
		if gvk.Kind != "Namespace" && meta.Namespace != "mgrplane" {
			t.Errorf("%s: namespace %q, want mgrplane", r.CurId(), meta.Namespace)
		}
		if meta.Labels["app.kubernetes.io/part-of"] != "mgrplane" {
			t.Errorf("%s: no label app.kubernetes.io/part-of=mgrplane", r.CurId())
		}
	}
	return o, made
}

func TestRenderedObjectsAreValidAndConsistent(t *testing.T) {
	o, made := render(t)
	if len(o.namespaces) != 1 || o.namespaces["mgrplane"] == nil {
		t.Fatalf("namespaces %v: want mgrplane alone", keys(o.namespaces))
	}
	mon := o.statefulSets["monsim"]
	mgr := o.statefulSets["mgr"]
	if mon == nil || mgr == nil || len(o.statefulSets) != 2 || len(o.deployments) != 0 {
		t.Fatalf("workloads: statefulsets %v, deployments %v; want the statefulsets monsim and mgr", keys(o.statefulSets), keys(o.deployments))
	}
	pods := map[string]*corev1.PodTemplateSpec{"monsim": &mon.Spec.Template, "mgr": &mgr.Spec.Template}

	// Each workload's selector selects its own pods and nobody else's.
	for name, sel := range map[string]*metav1.LabelSelector{"monsim": mon.Spec.Selector, "mgr": mgr.Spec.Selector} {
		if got := selects(t, sel, pods); !slices.Equal(got, []string{name}) {
			t.Errorf("workload %s: selector %v selects %v", name, sel, got)
		}
	}
	// Every Service selects exactly one workload and targets its ports.
	for name, svc := range o.services {
		got := selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pods)
		if len(got) != 1 {
			t.Errorf("service %s: selector %v selects %v; want one workload", name, svc.Spec.Selector, got)
			continue
		}
		c := onlyContainer(t, pods[got[0]])
		for _, p := range svc.Spec.Ports {
			cp, ok := containerPort(c, p.TargetPort)
			if !ok {
				t.Errorf("service %s port %s: target %s is no port of %s", name, p.Name, p.TargetPort.String(), got[0])
			} else if cp.ContainerPort != p.Port {
				t.Errorf("service %s port %s: %d, the container listens on %d", name, p.Name, p.Port, cp.ContainerPort)
			}
		}
	}

	env := sharedEnv(t, o)
	beacon, grace := durationEnv(t, env, "MGRPLANE_BEACON_PERIOD"), durationEnv(t, env, "MGRPLANE_GRACE")
	// The monitors' settings pass the monitor's own validation.
	mc := monsim.DefaultConfig()
	mc.BeaconPeriod, mc.Grace = beacon, grace
	mc.FenceTimeout, mc.Tick = durationEnv(t, env, "MGRPLANE_FENCE_TIMEOUT"), durationEnv(t, env, "MGRPLANE_TICK")
	mcreds, err := creds.LoadMonitor(made)
	if err != nil {
		t.Fatalf("the creds scripts/k8s-creds.sh made: %v", err)
	}
	mc.Creds = mcreds
	if err := mc.Validate(); err != nil {
		t.Errorf("mgrplane.env: the monitor would refuse its timings: %v", err)
	}

	if env["MGRPLANE_CREDS"] != credsDir {
		t.Errorf("MGRPLANE_CREDS %q; want %s, where the Secret is mounted", env["MGRPLANE_CREDS"], credsDir)
	}
	t.Run("monsim", func(t *testing.T) { checkMonsim(t, o, mon, env) })
	t.Run("mgr", func(t *testing.T) { checkManagers(t, o, mgr, env, beacon, grace) })
	t.Run("creds", func(t *testing.T) { checkCreds(t, o, mon, mgr, made) })

	// The budget keeps a quorum of monitors through voluntary disruptions.
	pdb := o.pdbs["monsim"]
	if pdb == nil || len(o.pdbs) != 1 {
		t.Fatalf("pod disruption budgets %v: want monsim", keys(o.pdbs))
	}
	if got := selects(t, pdb.Spec.Selector, pods); !slices.Equal(got, []string{"monsim"}) {
		t.Errorf("pdb monsim selects %v", got)
	}
	quorum := int(*mon.Spec.Replicas)/2 + 1
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != int(*mon.Spec.Replicas)-quorum {
		t.Errorf("pdb monsim: maxUnavailable %v; want %d (a quorum of %d of %d stays)", pdb.Spec.MaxUnavailable, int(*mon.Spec.Replicas)-quorum, quorum, *mon.Spec.Replicas)
	}

	// Network policies: one per workload, on ports its container has; the
	// monitors let in each other and the managers.
	for name, np := range o.netpols {
		got := selects(t, &np.Spec.PodSelector, pods)
		if len(got) != 1 {
			t.Errorf("network policy %s selects %v; want one workload", name, got)
			continue
		}
		c := onlyContainer(t, pods[got[0]])
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if _, ok := containerPort(c, *p.Port); !ok {
					t.Errorf("network policy %s: port %s is no port of %s", name, p.Port.String(), got[0])
				}
			}
		}
	}
	monPolicy := o.netpols["monsim"]
	if monPolicy == nil || len(monPolicy.Spec.Ingress) == 0 {
		t.Fatal("no network policy monsim")
	}
	var peers []string
	for _, from := range monPolicy.Spec.Ingress[0].From {
		if from.PodSelector != nil {
			peers = append(peers, selects(t, from.PodSelector, pods)...)
		}
	}
	slices.Sort(peers)
	if !slices.Equal(peers, []string{"mgr", "monsim"}) {
		t.Errorf("network policy monsim admits the pods of %v; want mgr and monsim", peers)
	}
}

func checkMonsim(t *testing.T, o *objects, mon *appsv1.StatefulSet, env map[string]string) {
	svc := o.services[mon.Spec.ServiceName]
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Fatalf("statefulset monsim: service %q must be headless and publish not-ready addresses (peers resolve before a quorum is ready): %+v", mon.Spec.ServiceName, svc)
	}
	if mon.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("statefulset monsim: podManagementPolicy %q; want Parallel (no monitor is ready before a quorum exists)", mon.Spec.PodManagementPolicy)
	}
	replicas := int(*mon.Spec.Replicas)
	if replicas != 3 && replicas != 5 {
		t.Errorf("statefulset monsim: %d replicas; want 3 or 5", replicas)
	}
	c := onlyContainer(t, &mon.Spec.Template)
	args := checkArgs(t, "monsim", c)
	grpc, ok := containerPort(c, intstr.FromString("grpc"))
	if !ok {
		t.Fatal("monsim: no container port grpc")
	}
	if port := portOf(t, args["addr"]); port != grpc.ContainerPort {
		t.Errorf("monsim --addr %s: the container port is %d", args["addr"], grpc.ContainerPort)
	}
	if args["id"] != "$(POD_NAME)" || envField(c, "POD_NAME") != "metadata.name" {
		t.Errorf("monsim --id %q: want $(POD_NAME), the pod's name", args["id"])
	}
	wantAdvertise := fmt.Sprintf("$(POD_NAME).%s:%d", svc.Name, grpc.ContainerPort)
	if args["advertise-addr"] != wantAdvertise {
		t.Errorf("monsim --advertise-addr %q; want %q", args["advertise-addr"], wantAdvertise)
	}
	// --peers names every pod of the StatefulSet at its per-pod DNS name.
	var want []string
	for i := range replicas {
		pod := fmt.Sprintf("%s-%d", mon.Name, i)
		want = append(want, fmt.Sprintf("%s=%s.%s:%d", pod, pod, svc.Name, grpc.ContainerPort))
	}
	if args["peers"] != strings.Join(want, ",") {
		t.Errorf("monsim --peers %q; want %q", args["peers"], strings.Join(want, ","))
	}
	// The data dir is on the PVC.
	if !underMount(c, args["data-dir"], "data") || len(mon.Spec.VolumeClaimTemplates) != 1 || mon.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("monsim --data-dir %q is not on the volume claim template data", args["data-dir"])
	}
	// The managers and mgrctl find the monitors at the same names.
	var monitors []string
	for i := range replicas {
		monitors = append(monitors, fmt.Sprintf("%s-%d.%s:%d", mon.Name, i, svc.Name, grpc.ContainerPort))
	}
	if env["MGRPLANE_MONITOR"] != strings.Join(monitors, ",") {
		t.Errorf("MGRPLANE_MONITOR %q; want %q", env["MGRPLANE_MONITOR"], strings.Join(monitors, ","))
	}
	// Readiness: the plaintext health-only listener (the kubelet's grpc
	// probe speaks no TLS; the gRPC port speaks nothing else).
	health := healthPort(t, "monsim", c, args)
	rp := c.ReadinessProbe
	if rp == nil || rp.GRPC == nil || rp.GRPC.Port != health || ptrStr(rp.GRPC.Service) != "" {
		t.Errorf("monsim readiness: want the gRPC health check (service \"\") on the health port %d, got %+v", health, rp)
	}
	checkLiveness(t, "monsim", c, 0)
	checkPod(t, "monsim", &mon.Spec.Template, o)
}

func checkManagers(t *testing.T, o *objects, mgr *appsv1.StatefulSet, env map[string]string, beacon, grace time.Duration) {
	// Stable names: each manager authenticates as mgr.<pod name>.
	hs := o.services[mgr.Spec.ServiceName]
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Fatalf("statefulset mgr: service %q must be headless and publish not-ready addresses (standbys are never ready, and must resolve): %+v", mgr.Spec.ServiceName, hs)
	}
	if mgr.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("statefulset mgr: podManagementPolicy %q; want Parallel (standbys are never ready)", mgr.Spec.PodManagementPolicy)
	}
	c := onlyContainer(t, &mgr.Spec.Template)
	args := checkArgs(t, "standby", c)
	grpc, gok := containerPort(c, intstr.FromString("grpc"))
	http, hok := containerPort(c, intstr.FromString("http"))
	if !gok || !hok {
		t.Fatal("standby: container ports grpc and http are required")
	}
	if port := portOf(t, args["grpc-addr"]); port != grpc.ContainerPort {
		t.Errorf("standby --grpc-addr %s: the container port grpc is %d", args["grpc-addr"], grpc.ContainerPort)
	}
	if port := portOf(t, args["http-addr"]); port != http.ContainerPort {
		t.Errorf("standby --http-addr %s: the container port http is %d", args["http-addr"], http.ContainerPort)
	}
	if args["name"] != "$(POD_NAME)" || envField(c, "POD_NAME") != "metadata.name" {
		t.Errorf("standby --name %q: want $(POD_NAME), the pod's name", args["name"])
	}
	if want := "$(POD_NAME)." + hs.Name; args["advertise-host"] != want {
		t.Errorf("standby --advertise-host %q: want %s, the pod's name in the headless Service (what mgr.crt names)", args["advertise-host"], want)
	}
	if env["MGRPLANE_MONITOR"] == "" && args["monitor"] == "" {
		t.Error("standby: no monitors (MGRPLANE_MONITOR or --monitor)")
	}
	// Readiness: the manager service's health, SERVING on the active only,
	// probed every beacon period so a Service follows a failover at once.
	health := healthPort(t, "standby", c, args)
	rp := c.ReadinessProbe
	svcName := mgrv1.ManagerService_ServiceDesc.ServiceName
	if rp == nil || rp.GRPC == nil || rp.GRPC.Port != health || ptrStr(rp.GRPC.Service) != svcName {
		t.Fatalf("standby readiness: want the gRPC health of %s on the health port %d, got %+v", svcName, health, rp)
	}
	if p := time.Duration(rp.PeriodSeconds) * time.Second; p > beacon || rp.FailureThreshold != 1 || rp.SuccessThreshold != 1 {
		t.Errorf("standby readiness every %v, failure threshold %d, success threshold %d: want at most the beacon period (%v), 1 and 1", p, rp.FailureThreshold, rp.SuccessThreshold, beacon)
	}
	checkLiveness(t, "standby", c, grace)
	if ls := c.Lifecycle; ls == nil || ls.PreStop == nil || ls.PreStop.Sleep == nil {
		t.Error("standby: no preStop sleep (new pods must join before the old active hands over)")
	} else if pre := time.Duration(ls.PreStop.Sleep.Seconds) * time.Second; pre >= time.Duration(*mgr.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second-grace {
		t.Errorf("standby: preStop %v leaves less than the grace (%v) of the termination grace period (%ds) for the handover", pre, grace, *mgr.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
	// Only the active is ever ready: a RollingUpdate, which waits for each
	// new pod to be ready, would stall at the first standby.
	if mgr.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		t.Errorf("statefulset mgr: updateStrategy %+v; want OnDelete (standbys are never ready)", mgr.Spec.UpdateStrategy)
	}
	// The Service of the active routes by readiness to the managers.
	svc := o.services["mgr-active"]
	if svc == nil || svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.PublishNotReadyAddresses {
		t.Fatalf("service mgr-active: want a ClusterIP Service of ready pods only, got %+v", svc)
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.TargetPort.String())
	}
	if slices.Sort(ports); !slices.Equal(ports, []string{"grpc", "http"}) {
		t.Errorf("service mgr-active targets %v; want grpc and http", ports)
	}
	checkPod(t, "standby", &mgr.Spec.Template, o)
}

// healthPort checks that --health-addr listens on the container port named
// health and returns that port.
func healthPort(t *testing.T, bin string, c *corev1.Container, args map[string]string) int32 {
	t.Helper()
	p, ok := containerPort(c, intstr.FromString("health"))
	if !ok {
		t.Fatalf("%s: no container port health", bin)
	}
	if args["health-addr"] == "" || portOf(t, args["health-addr"]) != p.ContainerPort {
		t.Errorf("%s --health-addr %q: want the container port health (%d)", bin, args["health-addr"], p.ContainerPort)
	}
	return p.ContainerPort
}

// checkCreds checks the Secret against the manifests: it holds what
// creds.LoadMonitor and LoadManager read and not the CA's key; the keyring
// has mgr.<pod> for every manager pod; the certificates name every address
// clients dial (the monitors in MGRPLANE_MONITOR, the managers' advertised
// names, the Service mgr-active).
func checkCreds(t *testing.T, o *objects, mon, mgr *appsv1.StatefulSet, made string) {
	var sec *corev1.Secret
	for _, v := range mgr.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			sec = o.secrets[v.Secret.SecretName]
		}
	}
	if sec == nil {
		t.Fatal("no credentials Secret mounted in the managers")
	}
	var got []string
	for k := range sec.Data {
		got = append(got, k)
	}
	slices.Sort(got)
	want := []string{creds.CACertFile, creds.KeyringFile, creds.MgrCertFile, creds.MgrKeyFile, creds.MonCertFile, creds.MonKeyFile}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("secret %s holds %v; want %v (never %s)", sec.Name, got, want, creds.CAKeyFile)
	}
	// The Secret is loadable as both daemons load it.
	dir := t.TempDir()
	for k, v := range sec.Data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := creds.LoadMonitor(dir); err != nil {
		t.Errorf("the Secret as a monitor's creds: %v", err)
	}
	if _, err := creds.LoadManager(dir); err != nil {
		t.Errorf("the Secret as a manager's creds: %v", err)
	}
	es, err := creds.ReadKeyring(filepath.Join(dir, creds.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	for i := range int(*mgr.Spec.Replicas) {
		if _, ok := creds.Find(es, fmt.Sprintf("mgr.%s-%d", mgr.Name, i)); !ok {
			t.Errorf("keyring: no mgr.%s-%d for manager pod %s-%d", mgr.Name, i, mgr.Name, i)
		}
	}
	if _, ok := creds.Find(es, "client.admin"); !ok {
		t.Error("keyring: no client.admin")
	}
	names := func(file string) []string {
		b, err := os.ReadFile(filepath.Join(made, file))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: not PEM", file)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert.DNSNames
	}
	monNames, mgrNames := names(creds.MonCertFile), names(creds.MgrCertFile)
	for i := range int(*mon.Spec.Replicas) {
		if n := fmt.Sprintf("%s-%d.%s", mon.Name, i, mon.Spec.ServiceName); !slices.Contains(monNames, n) {
			t.Errorf("mon.crt does not name %s (it names %v)", n, monNames)
		}
	}
	for i := range int(*mgr.Spec.Replicas) {
		if n := fmt.Sprintf("%s-%d.%s", mgr.Name, i, mgr.Spec.ServiceName); !slices.Contains(mgrNames, n) {
			t.Errorf("mgr.crt does not name %s (it names %v)", n, mgrNames)
		}
	}
	if !slices.Contains(mgrNames, "mgr-active") {
		t.Errorf("mgr.crt does not name the Service mgr-active (it names %v)", mgrNames)
	}
}

// checkLiveness checks that a liveness probe exists on a port of c and, for
// a manager, that it kills only after the monitors have replaced it (longer
// than the grace).
func checkLiveness(t *testing.T, bin string, c *corev1.Container, grace time.Duration) {
	t.Helper()
	lp := c.LivenessProbe
	if lp == nil || lp.TCPSocket == nil {
		t.Errorf("%s: want a TCP liveness probe, got %+v", bin, lp)
		return
	}
	if _, ok := containerPort(c, lp.TCPSocket.Port); !ok {
		t.Errorf("%s liveness: port %s is no container port", bin, lp.TCPSocket.Port.String())
	}
	if kill := time.Duration(lp.PeriodSeconds*lp.FailureThreshold) * time.Second; kill <= grace || kill < 10*time.Second {
		t.Errorf("%s liveness kills after %v of failures; want more than the grace (%v) and at least 10s", bin, kill, grace)
	}
}

// checkPod checks what every pod needs: non-root, resources, the shared
// ConfigMap, the credentials Secret mounted at credsDir.
func checkPod(t *testing.T, bin string, tpl *corev1.PodTemplateSpec, o *objects) {
	t.Helper()
	sc := tpl.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("%s: want runAsNonRoot as user 65532 (the image's user), got %+v", bin, sc)
	}
	c := onlyContainer(t, tpl)
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s, limit %s: want both, the request at most the limit", bin, res, req.String(), lim.String())
		}
	}
	if c.Image != "mgrplane:dev" {
		t.Errorf("%s: image %q; want mgrplane:dev (the kustomization's images entry)", bin, c.Image)
	}
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/"+bin {
		t.Errorf("%s: command %v; want /usr/local/bin/%s (deploy/docker/Dockerfile)", bin, c.Command, bin)
	}
	var cm string
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil {
			cm = e.ConfigMapRef.Name
		}
	}
	if o.configMaps[cm] == nil {
		t.Errorf("%s: envFrom ConfigMap %q does not exist (have %v)", bin, cm, keys(o.configMaps))
	}
	var secretVol string
	for _, v := range tpl.Spec.Volumes {
		if v.Secret != nil && o.secrets[v.Secret.SecretName] != nil {
			secretVol = v.Name
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == secretVol && m.MountPath == credsDir && m.ReadOnly)
	}
	if secretVol == "" || !mounted {
		t.Errorf("%s: the credentials Secret is not mounted read-only at %s", bin, credsDir)
	}
}

// sharedEnv returns the one ConfigMap's data, checking that every key is
// the variable of a flag of monsim, standby or mgrctl.
func sharedEnv(t *testing.T, o *objects) map[string]string {
	t.Helper()
	if len(o.configMaps) != 1 {
		t.Fatalf("config maps %v: want one, shared", keys(o.configMaps))
	}
	for _, cm := range o.configMaps {
		for k := range cm.Data {
			flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "MGRPLANE_")), "_", "-")
			if !strings.HasPrefix(k, "MGRPLANE_") || !(binFlags(t, "monsim")[flag] || binFlags(t, "standby")[flag] || binFlags(t, "mgrctl")[flag]) {
				t.Errorf("config map %s: %s is the variable of no flag of monsim, standby or mgrctl", cm.Name, k)
			}
		}
		return cm.Data
	}
	return nil
}

var argRE = regexp.MustCompile(`^--([a-z][a-z0-9-]*)(?:=(.*))?$`)

// checkArgs checks that every argument of c is --flag=value with a flag bin
// has, and returns them by flag.
func checkArgs(t *testing.T, bin string, c *corev1.Container) map[string]string {
	t.Helper()
	flags := binFlags(t, bin)
	out := map[string]string{}
	for _, a := range c.Args {
		m := argRE.FindStringSubmatch(a)
		if m == nil {
			t.Errorf("%s: argument %q is not --flag=value", bin, a)
			continue
		}
		if !flags[m[1]] {
			t.Errorf("%s: argument %q: %s has no flag --%s", bin, a, bin, m[1])
		}
		out[m[1]] = m[2]
	}
	return out
}

// binFlags returns the flags of a binary, read from its -h output (built
// once per test run).
func binFlags(t *testing.T, bin string) map[string]bool {
	t.Helper()
	flagsOnce.Do(func() { flagsByBin, flagsErr = buildAndReadFlags() })
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagsByBin[bin]
}

// binPath returns the path of a binary built for this test run.
func binPath(t *testing.T, bin string) string {
	t.Helper()
	binFlags(t, bin)
	return filepath.Join(binDir, bin)
}

var (
	flagsOnce  sync.Once
	flagsByBin map[string]map[string]bool
	flagsErr   error
	// binDir holds the binaries; TestMain removes it.
	binDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// flagLine matches a flag in Go's flag.PrintDefaults output ("  -addr string")
// and in mgrctl's help ("  --monitor ADDR", "  -o, --output ...").
var flagLine = regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--?([a-z][a-z0-9-]*)\b`)

func buildAndReadFlags() (map[string]map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "mgrplane-k8s-test")
	if err != nil {
		return nil, err
	}
	binDir = dir
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "github.com/mgrplane/mgrplane/cmd/monsim", "github.com/mgrplane/mgrplane/cmd/standby", "github.com/mgrplane/mgrplane/cmd/mgrctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	out := map[string]map[string]bool{}
	for _, bin := range []string{"monsim", "standby", "mgrctl"} {
		help, _ := exec.CommandContext(ctx, filepath.Join(dir, bin), "-h").CombinedOutput() // -h exits 0 or 2
		flags := map[string]bool{}
		for _, m := range flagLine.FindAllStringSubmatch(string(help), -1) {
			flags[m[1]] = true
		}
		if !flags["log-level"] && !flags["monitor"] {
			return nil, fmt.Errorf("%s -h lists no flags I can read:\n%s", bin, help)
		}
		out[bin] = flags
	}
	return out, nil
}

func onlyContainer(t *testing.T, tpl *corev1.PodTemplateSpec) *corev1.Container {
	t.Helper()
	if len(tpl.Spec.Containers) != 1 {
		t.Fatalf("pod template %v: %d containers; want one", tpl.Labels, len(tpl.Spec.Containers))
	}
	return &tpl.Spec.Containers[0]
}

// containerPort finds the port of c that p names (by name or number).
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// selects returns the workloads (sorted) whose pod labels sel matches.
func selects(t *testing.T, sel *metav1.LabelSelector, pods map[string]*corev1.PodTemplateSpec) []string {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	if s.Empty() {
		t.Fatalf("selector %v is empty: it would select every pod", sel)
	}
	var out []string
	for name, p := range pods {
		if s.Matches(labels.Set(p.Labels)) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	p, err := strconv.ParseInt(addr[i+1:], 10, 32)
	if i < 0 || err != nil {
		t.Fatalf("address %q: want host:port", addr)
	}
	return int32(p)
}

// envField returns the downward-API field an env variable of c is set from.
func envField(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

// underMount reports whether path lies under the mount of volume vol.
func underMount(c *corev1.Container, path, vol string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == vol && strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

func durationEnv(t *testing.T, env map[string]string, k string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(env[k])
	if err != nil {
		t.Fatalf("mgrplane.env: %s=%q: %v", k, env[k], err)
	}
	return d
}

func ptrStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
