// Renders the kubeadm configuration of deploy/kind/cluster.yaml with kind's own code and
// checks that the API server gets its tracing configuration.
//
// This file is not built in this repository. e2e/kind-config/check copies one release of
// the sigs.k8s.io/kind module out of the Go module cache into target/kind-render/<version>,
// drops this file into its pkg/cluster directory and runs `go test` there, once per kind
// release. Why there:
//
//   - The code that renders the configuration and applies kubeadmConfigPatches lives in
//     internal packages (pkg/cluster/internal/..., pkg/internal/...), which Go lets only
//     packages inside sigs.k8s.io/kind/pkg/cluster (resp. .../pkg) import.
//   - In package cluster, a test can build a *Provider around its unexported `provider`
//     field and call the public Create with the options `kind create cluster --config`
//     uses. So the whole path is kind's: its config loader (strict decoding, defaults,
//     conversion), validation, node naming, and the "Writing configuration" action that
//     renders the kubeadm template for the node's Kubernetes version, applies the cluster's
//     and the node's patches and writes /kind/kubeadm.conf onto the node.
//
// Only the container runtime is faked: renderProvider "provisions" nodes that answer the
// few commands that action runs (cat /kind/version, mkdir -p, cp /dev/stdin), and
// CreateWithStopBeforeSettingUpKubernetes stops kind right after that action, before
// `kubeadm init`. The file compiles unchanged against kind v0.30.0 to v0.33.0: everything
// it touches (Provider's fields, the create options, providers.Provider, nodes.Node,
// exec.Cmd, config.Cluster) has the same shape in all four. It keeps to Go 1.17 (no
// generics, no `any`) because kind's go.mod says `go 1.17`.
//
// Environment (set by e2e/kind-config/check):
//
//	KIND_RENDER_CONFIG  the kind cluster configuration to render (absolute path)
//	KIND_RENDER_ROOT    the directory `kind create cluster` runs from, which relative
//	                    extraMounts host paths are resolved against: the repository root
//	KIND_RENDER_OUT     optional: a directory to write each node's kubeadm.conf to
//	KIND_RENDER_IMAGE   optional: a node image for every node, like `kind create --image`
//
// Output: one line per control-plane node, `RESULT <what was rendered>: PASS|FAIL`,
// followed on failure by `DETAIL` lines, for the script to print.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"sigs.k8s.io/kind/pkg/cluster/constants"
	"sigs.k8s.io/kind/pkg/cluster/internal/providers"
	"sigs.k8s.io/kind/pkg/cluster/internal/providers/common"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	"sigs.k8s.io/kind/pkg/exec"
	"sigs.k8s.io/kind/pkg/internal/apis/config"
	"sigs.k8s.io/kind/pkg/internal/cli"
	"sigs.k8s.io/kind/pkg/log"
)

// The flag that makes kube-apiserver export spans, and kind's own apiServer argument that
// must survive our patches (both kubeadm templates of kind always set it).
const (
	tracingFlag     = "tracing-config-file"
	kindsOwnArg     = "runtime-config"
	kubeadmConfPath = "/kind/kubeadm.conf"
)

func TestEchoOperatorKindConfig(t *testing.T) {
	configPath := requireEnv(t, "KIND_RENDER_CONFIG")
	root := requireEnv(t, "KIND_RENDER_ROOT")

	fake := &renderProvider{}
	kind := &Provider{provider: fake, logger: log.NoopLogger{}}
	options := []CreateOption{
		CreateWithConfigFile(configPath), // kind's loader: strict decoding, defaults, conversion
		CreateWithStopBeforeSettingUpKubernetes(true),
		// On failure kind would otherwise delete the cluster, which also removes the
		// cluster's context from the kubeconfig: keep its hands off the developer's.
		CreateWithRetain(true),
		CreateWithKubeconfigPath(filepath.Join(t.TempDir(), "kubeconfig")),
	}
	if image := os.Getenv("KIND_RENDER_IMAGE"); image != "" {
		options = append(options, CreateWithNodeImage(image))
	}
	// The name comes from the file, as with `kind create cluster --config` without --name.
	if err := kind.Create("", options...); err != nil {
		fmt.Printf("RESULT kind create (up to the kubeadm configuration): FAIL\nDETAIL %v\n", err)
		t.Fatalf("kind could not render the configuration: %v", err)
	}

	checked := 0
	for _, node := range fake.nodes {
		if node.role != constants.ControlPlaneNodeRoleValue {
			continue
		}
		checked++
		apiVersion, notes, problems := checkControlPlane(node, root)
		if dir := os.Getenv("KIND_RENDER_OUT"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, node.name+".kubeadm.conf"), []byte(node.files[kubeadmConfPath]), 0o644); err != nil {
				t.Errorf("saving the rendered configuration: %v", err)
			}
		}
		verdict := "PASS"
		if len(problems) > 0 {
			verdict = "FAIL"
		}
		fmt.Printf("RESULT node %s (%s) -> %s: %s\n", node.kubeVersion, node.image, apiVersion, verdict)
		for _, note := range notes {
			fmt.Printf("DETAIL note: %s\n", note)
		}
		for _, problem := range problems {
			fmt.Printf("DETAIL %s\n", problem)
			t.Errorf("%s: %s", node.name, problem)
		}
	}
	if checked == 0 {
		fmt.Printf("RESULT no control-plane node: FAIL\n")
		t.Fatal("the configuration has no control-plane node")
	}
}

// The Kubernetes version comes from the image tag, as `kind create cluster` would read it
// from /kind/version inside the pulled image: the kindest/node tags are those versions.
func TestEchoOperatorNodeImageVersion(t *testing.T) {
	cases := map[string]string{
		"kindest/node:v1.34.0": "v1.34.0",
		"kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5": "v1.37.0",
		"localhost:5000/kindest/node:v1.35.1":                                                  "v1.35.1",
		"kindest/node@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5": "",
		"localhost:5000/kindest/node":                                                          "",
		"kindest/node:latest":                                                                  "",
	}
	for image, want := range cases {
		got, err := kubeVersionOfImage(image)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("kubeVersionOfImage(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
}

var kubeVersionTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`)

func kubeVersionOfImage(image string) (string, error) {
	ref := image
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at] // a pinned digest, @sha256:...
	}
	name := ref[strings.LastIndex(ref, "/")+1:] // a registry's :port is before the last slash
	colon := strings.LastIndex(name, ":")
	if colon < 0 || !kubeVersionTag.MatchString(name[colon+1:]) {
		return "", fmt.Errorf("node image %q has no vX.Y.Z tag to tell its Kubernetes version", image)
	}
	return name[colon+1:], nil
}

// checkControlPlane reads what kind wrote to the node and returns the kubeadm API version
// of its ClusterConfiguration, notes (patches kind skipped), and the problems found.
func checkControlPlane(node *renderNode, root string) (apiVersion string, notes, problems []string) {
	conf, ok := node.files[kubeadmConfPath]
	if !ok {
		return "?", nil, []string{"kind wrote no " + kubeadmConfPath + " to the node"}
	}
	rendered, err := yamlDocuments(conf)
	if err != nil {
		return "?", nil, []string{"the rendered kubeadm configuration does not parse: " + err.Error()}
	}
	patches, err := node.patchDocuments()
	if err != nil {
		return "?", nil, []string{"the kubeadm patches do not parse: " + err.Error()}
	}
	for _, p := range patches {
		if findDocument(rendered, p.kind, p.apiVersion) == nil {
			notes = append(notes, fmt.Sprintf("kind ignored the %s %s patch: no generated document has that kind and apiVersion", p.apiVersion, p.kind))
		}
	}
	for _, doc := range rendered {
		problems = append(problems, argumentShapeProblems(doc)...)
	}
	problems = append(problems, survivingPatchProblems(rendered, patches)...)

	cluster := findDocument(rendered, "ClusterConfiguration", "")
	if cluster == nil {
		return "?", notes, append(problems, "the rendered configuration has no ClusterConfiguration")
	}
	apiVersion = str(cluster["apiVersion"])
	apiServer := mapAt(cluster, "apiServer")
	args := argumentsOf(apiServer["extraArgs"])
	if _, ok := args[kindsOwnArg]; !ok {
		problems = append(problems, fmt.Sprintf("kind's own apiServer argument %s is gone: a patch replaced kind's extraArgs instead of adding to them", kindsOwnArg))
	}
	flagPath := str(args[tracingFlag])
	if flagPath == "" {
		return apiVersion, notes, append(problems, fmt.Sprintf(
			"kube-apiserver gets no --%s: the rendered %s ClusterConfiguration lacks it in apiServer.extraArgs (kind applies a patch only to the document whose kind and apiVersion both match)",
			tracingFlag, apiVersion))
	}

	// The file the flag names must be in the kube-apiserver pod: an extraVolume (a hostPath
	// volume of the static pod) must mount it from the node ...
	nodeFile := ""
	for _, v := range listAt(apiServer, "extraVolumes") {
		volume, _ := v.(map[string]interface{})
		if rel, ok := under(flagPath, str(volume["mountPath"])); ok {
			nodeFile = path.Join(str(volume["hostPath"]), rel)
		}
	}
	if nodeFile == "" {
		return apiVersion, notes, append(problems, fmt.Sprintf("--%s=%s, but no apiServer extraVolume mounts that path into the kube-apiserver pod", tracingFlag, flagPath))
	}
	// ... and the node (a container) must have it from the host, through extraMounts.
	hostFile := ""
	for _, m := range node.mounts {
		if rel, ok := under(nodeFile, m.ContainerPath); ok {
			hostFile = filepath.Join(m.HostPath, filepath.FromSlash(rel))
			if !filepath.IsAbs(hostFile) {
				hostFile = filepath.Join(root, hostFile)
			}
		}
	}
	if hostFile == "" {
		return apiVersion, notes, append(problems, fmt.Sprintf("the extraVolume takes %s from the node, but no extraMounts entry of %s puts a file there", nodeFile, node.name))
	}
	if problem := tracingConfigurationProblem(hostFile); problem != "" {
		problems = append(problems, problem)
	}
	return apiVersion, notes, problems
}

func tracingConfigurationProblem(hostFile string) string {
	raw, err := os.ReadFile(hostFile)
	if err != nil {
		return fmt.Sprintf("extraMounts brings in %s, which cannot be read: %v", hostFile, err)
	}
	var doc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil || doc.Kind != "TracingConfiguration" || !strings.HasPrefix(doc.APIVersion, "apiserver.config.k8s.io/") {
		return fmt.Sprintf("%s is not an apiserver.config.k8s.io TracingConfiguration", hostFile)
	}
	return ""
}

// argumentShapeProblems finds kubeadm arguments in the shape of the other API version,
// which kubeadm would refuse: v1beta3 takes a map, v1beta4 a list of {name, value}.
func argumentShapeProblems(doc map[string]interface{}) []string {
	apiVersion := str(doc["apiVersion"])
	if !strings.HasPrefix(apiVersion, "kubeadm.k8s.io/") {
		return nil
	}
	wantList := apiVersion != "kubeadm.k8s.io/v1beta3" && apiVersion != "kubeadm.k8s.io/v1beta2"
	var problems []string
	walkArguments(doc, "", func(at string, value interface{}) {
		_, isList := value.([]interface{})
		_, isMap := value.(map[string]interface{})
		switch {
		case value == nil: // kind's own templates leave some empty
		case wantList && !isList:
			problems = append(problems, fmt.Sprintf("%s %s: %s must be a list of {name, value}", apiVersion, str(doc["kind"]), at))
		case !wantList && !isMap:
			problems = append(problems, fmt.Sprintf("%s %s: %s must be a map", apiVersion, str(doc["kind"]), at))
		}
	})
	return problems
}

// survivingPatchProblems checks that every argument and extraVolume set by a patch that
// kind applied is in the result, so that neither another patch nor kind's merge dropped
// it. Patches apply in order (the cluster's, then the node's), so the last value set for
// an argument is the one expected; an argument set to null is a deletion.
func survivingPatchProblems(rendered []map[string]interface{}, patches []patchDocument) []string {
	type expectation struct {
		target          map[string]interface{}
		patch, at, name string
		value           string
		deleted         bool
	}
	var order []string
	expected := map[string]expectation{}
	var problems []string
	for _, p := range patches {
		target := findDocument(rendered, p.kind, p.apiVersion)
		if target == nil || p.doc == nil {
			continue
		}
		patch := p.apiVersion + " " + p.kind
		walkArguments(p.doc, "", func(at string, value interface{}) {
			args := argumentsOf(value)
			for _, name := range sortedKeys(args) {
				v := args[name]
				key := fmt.Sprintf("%p %s %s", target, at, name)
				if _, seen := expected[key]; !seen {
					order = append(order, key)
				}
				expected[key] = expectation{target: target, patch: patch, at: at, name: name, value: str(v), deleted: v == nil}
			}
		})
		walkKey(p.doc, "", "extraVolumes", func(at string, value interface{}) {
			names := map[string]bool{}
			for _, v := range listOf(valueAt(target, at)) {
				volume, _ := v.(map[string]interface{})
				names[str(volume["name"])] = true
			}
			for _, v := range listOf(value) {
				volume, _ := v.(map[string]interface{})
				if !names[str(volume["name"])] {
					problems = append(problems, fmt.Sprintf("the %s patch adds the extraVolume %q at %s, but the result lacks it", patch, str(volume["name"]), at))
				}
			}
		})
	}
	for _, key := range order {
		e := expected[key]
		have, present := argumentsOf(valueAt(e.target, e.at))[e.name]
		switch {
		case e.deleted && present:
			problems = append(problems, fmt.Sprintf("the %s patch removes %s %s, but the result has it", e.patch, e.at, e.name))
		case !e.deleted && (!present || str(have) != e.value):
			problems = append(problems, fmt.Sprintf("the %s patch sets %s %s=%s, but the result has %q", e.patch, e.at, e.name, e.value, str(have)))
		}
	}
	return problems
}

// The fake container runtime.

// renderProvider stands in for kind's docker provider: Provision records the nodes the
// configuration asks for, named as kind names them, instead of starting containers.
type renderProvider struct {
	mu    sync.Mutex
	nodes []*renderNode
}

var _ providers.Provider = &renderProvider{}

// String names the provider in the generated provider-id, as kind's docker provider does.
func (p *renderProvider) String() string { return "docker" }

func (p *renderProvider) Provision(_ *cli.Status, cfg *config.Cluster) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := common.MakeNodeNamer(cfg.Name)
	for i := range cfg.Nodes {
		n := cfg.Nodes[i].DeepCopy()
		kubeVersion, err := kubeVersionOfImage(n.Image)
		if err != nil {
			return err
		}
		p.nodes = append(p.nodes, &renderNode{
			name:        name(string(n.Role)),
			role:        string(n.Role),
			ip:          fmt.Sprintf("172.18.0.%d", i+2),
			image:       n.Image,
			kubeVersion: kubeVersion,
			mounts:      n.ExtraMounts,
			patches:     append(append([]string{}, cfg.KubeadmConfigPatches...), n.KubeadmConfigPatches...),
			jsonPatches: append(append([]config.PatchJSON6902{}, cfg.KubeadmConfigPatchesJSON6902...), n.KubeadmConfigPatchesJSON6902...),
			files:       map[string]string{"/kind/version": kubeVersion + "\n"},
		})
	}
	return nil
}

func (p *renderProvider) ListNodes(string) ([]nodes.Node, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := []nodes.Node{}
	for _, n := range p.nodes {
		list = append(list, n)
	}
	return list, nil
}

func (p *renderProvider) GetAPIServerInternalEndpoint(cluster string) (string, error) {
	all, err := p.ListNodes(cluster)
	if err != nil {
		return "", err
	}
	n, err := nodeutils.APIServerEndpointNode(all)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", n.String(), common.APIServerInternalPort), nil
}

func (p *renderProvider) Info() (*providers.ProviderInfo, error) {
	return &providers.ProviderInfo{Cgroup2: true, SupportsMemoryLimit: true, SupportsPidsLimit: true, SupportsCPUShares: true}, nil
}

var errNotRendering = errors.New("not needed to render the kubeadm configuration")

func (p *renderProvider) ListClusters() ([]string, error)             { return nil, nil }
func (p *renderProvider) DeleteNodes([]nodes.Node) error              { return errNotRendering }
func (p *renderProvider) GetAPIServerEndpoint(string) (string, error) { return "", errNotRendering }
func (p *renderProvider) CollectLogs(string, []nodes.Node) error      { return errNotRendering }

// renderNode is a node container reduced to a file map and the three commands kind's
// configuration action runs on it; anything else fails, so a new dependency shows.
type renderNode struct {
	name, role, ip, image, kubeVersion string
	mounts                             []config.Mount
	patches                            []string
	jsonPatches                        []config.PatchJSON6902

	mu    sync.Mutex
	files map[string]string
}

var _ nodes.Node = &renderNode{}

func (n *renderNode) String() string              { return n.name }
func (n *renderNode) Role() (string, error)       { return n.role, nil }
func (n *renderNode) IP() (string, string, error) { return n.ip, "", nil }
func (n *renderNode) SerialLogs(io.Writer) error  { return nil }
func (n *renderNode) Command(name string, args ...string) exec.Cmd {
	return &renderCmd{node: n, argv: append([]string{name}, args...)}
}
func (n *renderNode) CommandContext(_ context.Context, name string, args ...string) exec.Cmd {
	return n.Command(name, args...)
}

type renderCmd struct {
	node   *renderNode
	argv   []string
	stdin  io.Reader
	stdout io.Writer
}

func (c *renderCmd) SetEnv(...string) exec.Cmd      { return c }
func (c *renderCmd) SetStdin(r io.Reader) exec.Cmd  { c.stdin = r; return c }
func (c *renderCmd) SetStdout(w io.Writer) exec.Cmd { c.stdout = w; return c }
func (c *renderCmd) SetStderr(io.Writer) exec.Cmd   { return c }

func (c *renderCmd) Run() error {
	n := c.node
	n.mu.Lock()
	defer n.mu.Unlock()
	fail := func(why string) error {
		return &exec.RunError{Command: c.argv, Inner: fmt.Errorf("fake node %s: %s", n.name, why)}
	}
	switch {
	case len(c.argv) == 2 && c.argv[0] == "cat":
		content, ok := n.files[c.argv[1]]
		if !ok {
			return fail("no such file")
		}
		if c.stdout != nil {
			_, err := io.WriteString(c.stdout, content)
			return err
		}
		return nil
	case len(c.argv) == 3 && c.argv[0] == "mkdir" && c.argv[1] == "-p":
		return nil
	case len(c.argv) == 3 && c.argv[0] == "cp" && c.argv[1] == "/dev/stdin":
		var content bytes.Buffer
		if c.stdin != nil {
			if _, err := io.Copy(&content, c.stdin); err != nil {
				return err
			}
		}
		n.files[c.argv[2]] = content.String()
		return nil
	}
	return fail("the render test does not run this command")
}

// The node's kubeadm patches as kind matches them: by kind and apiVersion, per document.
type patchDocument struct {
	kind, apiVersion string
	doc              map[string]interface{} // nil for an RFC 6902 patch
}

func (n *renderNode) patchDocuments() ([]patchDocument, error) {
	var patches []patchDocument
	for _, raw := range n.patches {
		docs, err := yamlDocuments(raw)
		if err != nil {
			return nil, err
		}
		for _, doc := range docs {
			patches = append(patches, patchDocument{kind: str(doc["kind"]), apiVersion: str(doc["apiVersion"]), doc: doc})
		}
	}
	for _, p := range n.jsonPatches {
		apiVersion := p.Version
		if p.Group != "" {
			apiVersion = p.Group + "/" + p.Version
		}
		patches = append(patches, patchDocument{kind: p.Kind, apiVersion: apiVersion})
	}
	return patches, nil
}

// Small helpers over decoded YAML.

func yamlDocuments(stream string) ([]map[string]interface{}, error) {
	decoder := yaml.NewDecoder(strings.NewReader(stream))
	var docs []map[string]interface{}
	for {
		var doc map[string]interface{}
		err := decoder.Decode(&doc)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// findDocument matches as kind does: kind must be equal, apiVersion too unless empty.
func findDocument(docs []map[string]interface{}, kind, apiVersion string) map[string]interface{} {
	for _, doc := range docs {
		if str(doc["kind"]) == kind && (apiVersion == "" || str(doc["apiVersion"]) == apiVersion) {
			return doc
		}
	}
	return nil
}

// walkArguments calls fn for every extraArgs and kubeletExtraArgs below doc.
func walkArguments(doc map[string]interface{}, at string, fn func(at string, value interface{})) {
	walkKey(doc, at, "extraArgs", fn)
	walkKey(doc, at, "kubeletExtraArgs", fn)
}

// walkKey calls fn with the dotted path of every field called key in nested maps, in
// a fixed order so that the output does not change from run to run.
func walkKey(doc map[string]interface{}, at, key string, fn func(at string, value interface{})) {
	for _, k := range sortedKeys(doc) {
		v := doc[k]
		here := strings.TrimPrefix(at+"."+k, ".")
		if k == key {
			fn(here, v)
		} else if child, ok := v.(map[string]interface{}); ok {
			walkKey(child, here, key, fn)
		}
	}
}

func valueAt(doc map[string]interface{}, at string) interface{} {
	var v interface{} = doc
	for _, k := range strings.Split(at, ".") {
		m, _ := v.(map[string]interface{})
		v = m[k]
	}
	return v
}

// argumentsOf reads kubeadm arguments in either shape into name -> value (nil: null).
func argumentsOf(value interface{}) map[string]interface{} {
	args := map[string]interface{}{}
	switch v := value.(type) {
	case map[string]interface{}:
		for name, value := range v {
			args[name] = value
		}
	case []interface{}:
		for _, item := range v {
			arg, _ := item.(map[string]interface{})
			args[str(arg["name"])] = arg["value"]
		}
	}
	return args
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapAt(doc map[string]interface{}, key string) map[string]interface{} {
	m, _ := doc[key].(map[string]interface{})
	return m
}

func listAt(doc map[string]interface{}, key string) []interface{} { return listOf(doc[key]) }

func listOf(value interface{}) []interface{} {
	l, _ := value.([]interface{})
	return l
}

func str(value interface{}) string {
	if value == nil {
		return ""
	}
	return fmt.Sprint(value)
}

// under reports whether p is dir or inside it, and p relative to dir.
func under(p, dir string) (string, bool) {
	if dir == "" {
		return "", false
	}
	if p == dir {
		return "", true
	}
	if strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
		return strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/"), true
	}
	return "", false
}

func requireEnv(t *testing.T, name string) string {
	value := os.Getenv(name)
	if value == "" {
		t.Fatalf("%s is not set: run e2e/kind-config/check, which sets it", name)
	}
	return value
}
