# Conformance vectors of the base policy: each has a stable id, an input document and the
# expected decision (allowed, and the set of rules that deny). The Rego unit tests in
# policy_test.rego check each one under `opa test`; the build copies them into the capsule
# manifest so that a peer receiving the capsule re-runs them on its own engine before trusting it.
package canswarm.conformance

heartbeat := {
	"schema": 1, "gate": "ingress", "kind": "HEARTBEAT",
	"sizes": {"payloadBytes": 120, "refs": 0}, "fields": {}, "counters": {"messages": 3},
}

need := {
	"schema": 1, "gate": "preflight", "kind": "NEED",
	"sizes": {"payloadBytes": 300, "refs": 0}, "fields": {"budget": 50, "bidWindowMs": 400},
}

commit := {
	"schema": 1, "gate": "commit", "kind": "COMMIT", "taskClass": "sha256",
	"sizes": {"payloadBytes": 400, "refs": 1}, "fields": {"verifyBounty": 0}, "outputsMatch": true,
	"telemetry": {
		"claimed": {"cpuMs": 1, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 64},
		"measured": {"inputBytes": 10, "outputBytes": 64},
	},
}

allow := {"allowed": true, "rules": []}

deny(rules) := {"allowed": false, "rules": rules}

vectors := {
	"conf-good-001": {"input": heartbeat, "expect": allow},
	"conf-good-002": {"input": need, "expect": allow},
	"conf-good-003": {"input": commit, "expect": allow},
	"conf-kind-001": {"input": object.union(heartbeat, {"kind": "BOGUS"}), "expect": deny(["kind-allowed"])},
	"conf-kind-002": {"input": object.remove(heartbeat, ["kind"]), "expect": deny(["kind-allowed"])},
	"conf-kind-003": {
		"input": object.union(heartbeat, {"kind": "GRANT", "fields": {"leaseTtlMs": 60000}}),
		"expect": allow,
	},
	"conf-schema-001": {"input": object.union(heartbeat, {"schema": 2}), "expect": deny(["schema-version"])},
	"conf-schema-002": {"input": object.remove(heartbeat, ["schema"]), "expect": deny(["schema-version"])},
	"conf-size-003": {"input": object.remove(heartbeat, ["sizes"]), "expect": deny(["payload-size", "refs-count"])},
	"conf-gate-001": {"input": object.union(heartbeat, {"gate": "egress"}), "expect": deny(["gate-known"])},
	"conf-size-001": {
		"input": object.union(heartbeat, {"sizes": {"payloadBytes": 1048576, "refs": 0}}),
		"expect": allow,
	},
	"conf-size-002": {
		"input": object.union(heartbeat, {"sizes": {"payloadBytes": 1048577, "refs": 0}}),
		"expect": deny(["payload-size"]),
	},
	"conf-refs-001": {
		"input": object.union(heartbeat, {"sizes": {"payloadBytes": 120, "refs": 1025}}),
		"expect": deny(["refs-count"]),
	},
	"conf-credits-001": {
		"input": object.union(need, {"fields": {"budget": 1000001, "bidWindowMs": 400}}),
		"expect": deny(["budget-credits"]),
	},
	"conf-credits-002": {
		"input": object.union(need, {"fields": {"budget": -1, "bidWindowMs": 400}}),
		"expect": deny(["budget-credits"]),
	},
	"conf-messages-001": {
		"input": object.union(heartbeat, {"counters": {"messages": 10000}}),
		"expect": allow,
	},
	"conf-messages-002": {
		"input": object.union(heartbeat, {"counters": {"messages": 10001}}),
		"expect": deny(["budget-messages"]),
	},
	"conf-retries-001": {
		"input": object.union(need, {"kind": "PROPOSE", "fields": {"ballot": 17, "price": 3}}),
		"expect": deny(["budget-retries"]),
	},
	"conf-ttl-001": {
		"input": object.union(need, {"kind": "CLAIM", "fields": {"leaseTtlMs": 600001, "cost": 1}}),
		"expect": deny(["budget-ttl"]),
	},
	"conf-ttl-002": {
		"input": object.union(need, {"kind": "CLAIM", "fields": {"leaseTtlMs": 0, "cost": 1}}),
		"expect": deny(["budget-ttl"]),
	},
	"conf-bounty-001": {"input": object.union(commit, {"fields": {"verifyBounty": 100}}), "expect": allow},
	"conf-bounty-002": {
		"input": object.union(commit, {"fields": {"verifyBounty": 101}}),
		"expect": deny(["bounty-cap"]),
	},
	"conf-bounty-003": {
		"input": object.union(commit, {"taskClass": "unlisted", "fields": {"verifyBounty": 51}}),
		"expect": deny(["bounty-cap"]),
	},
	"conf-bounty-004": {
		"input": object.union(object.remove(commit, ["taskClass"]), {"gate": "ingress", "fields": {"verifyBounty": 200}}),
		"expect": allow,
	},
	"conf-bounty-005": {
		"input": object.union(object.remove(commit, ["taskClass"]), {"gate": "ingress", "fields": {"verifyBounty": 201}}),
		"expect": deny(["bounty-cap"]),
	},
	"conf-commit-001": {"input": object.union(commit, {"outputsMatch": false}), "expect": deny(["outputs-match"])},
	"conf-commit-002": {
		"input": object.union(commit, {"telemetry": {
			"claimed": {"cpuMs": 1, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 640},
			"measured": {"inputBytes": 10, "outputBytes": 64},
		}}),
		"expect": deny(["telemetry-exact"]),
	},
	"conf-commit-007": {
		"input": object.union(commit, {"telemetry": {
			"claimed": {"cpuMs": 1, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 64},
			"measured": {"inputBytes": 10, "outputBytes": 6400},
		}}),
		"expect": deny(["telemetry-exact"]),
	},
	"conf-commit-003": {
		"input": object.union(commit, {"telemetry": {
			"claimed": {"cpuMs": 500, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 64},
			"measured": {"cpuMs": 10, "inputBytes": 10, "outputBytes": 64},
		}}),
		"expect": deny(["telemetry-above-measured"]),
	},
	"conf-commit-004": {
		"input": object.union(commit, {"telemetry": {
			"claimed": {"cpuMs": 70, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 64},
			"measured": {"cpuMs": 10, "inputBytes": 10, "outputBytes": 64},
		}}),
		"expect": allow,
	},
	"conf-commit-005": {
		"input": object.union(commit, {"taskClass": "unlisted", "telemetry": {
			"claimed": {"cpuMs": 10001, "wallMs": 50, "memoryBytes": 0, "inputBytes": 10, "outputBytes": 64},
			"measured": {"inputBytes": 10, "outputBytes": 64},
		}}),
		"expect": deny(["telemetry-cap"]),
	},
	"conf-commit-006": {
		"input": object.union(commit, {"gate": "ingress", "outputsMatch": false}),
		"expect": allow,
	},
}
