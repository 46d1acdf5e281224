// The kind node image's pod sandbox ("pause") image: a process that holds the pod's namespaces
// until told to stop. Kubernetes' own is C and lives outside any Go module; this does the
// same job. Built by e2e/lib/build-tools --kind-node.
module echo-operator.example/e2e/tools/pause

go 1.24.6
