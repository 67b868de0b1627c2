# CAN Swarm base policy (docs/PROTOCOL.md §4, §10), schema version 1.
#
# Entrypoint: canswarm/base/decision -> {"allowed": bool, "reasons": [{"rule", "field"}]}.
# Default deny: an envelope is allowed only when its kind is a protocol verb and no rule below
# names a reason. The input document is built by packages/peer/src/policy/input.ts (see
# policies/README.md): it holds sizes and the few payload numbers that the budgets cover, never
# the payload itself, so evaluation is small and fast.
package canswarm.base

# Version of the input document this policy reads.
schema_version := 1

gates := {"preflight", "ingress", "commit"}

# The verbs of docs/PROTOCOL.md §4; every other kind is denied.
kinds := {
	"NEED", "PROPOSE", "ATTEST_PLAN", "DECIDE", "UPDATE_PLAN", "RECONCILE",
	"CLAIM", "GRANT", "HEARTBEAT", "YIELD", "RELEASE", "COMMIT",
	"ATTEST", "FINALIZE", "CHALLENGE", "INVALIDATE", "CHECKPOINT",
}

# Canonical (DAG-CBOR) payload size limit: 1 MiB.
max_payload_bytes := 1048576

# Artifact references per envelope.
max_refs := 1024

# Envelopes one sender may put into one thread (the message budget, counted at ingress).
max_messages_per_thread := 10000

# Budgets over payload numbers: credits, retries, TTLs. `min` is inclusive, `max` inclusive.
field_limits := {
	"budget": {"rule": "budget-credits", "field": "payload.budget", "min": 0, "max": 1000000},
	"price": {"rule": "budget-credits", "field": "payload.price", "min": 0, "max": 1000000},
	"cost": {"rule": "budget-credits", "field": "payload.cost", "min": 0, "max": 1000000},
	"bond": {"rule": "budget-credits", "field": "payload.bond", "min": 0, "max": 1000000},
	"ballot": {"rule": "budget-retries", "field": "payload.ballot", "min": 0, "max": 16},
	"leaseTtlMs": {"rule": "budget-ttl", "field": "payload.leaseTtlMs", "min": 1, "max": 600000},
	"bidWindowMs": {"rule": "budget-ttl", "field": "payload.bidWindowMs", "min": 0, "max": 600000},
	"etaMs": {"rule": "budget-ttl", "field": "payload.etaMs", "min": 0, "max": 3600000},
}

# Verify bounty caps per task class (the capability of the task), in credits.
bounty_caps := {
	"sha256": 100,
	"word-frequency": 200,
	"sort-dedupe": 200,
}

default_bounty_cap := 50

# Per task class: the most CPU time a worker may bill for one task, in ms.
cpu_caps_ms := {"sha256": 60000, "word-frequency": 60000, "sort-dedupe": 60000}

default_cpu_cap_ms := 10000

# Claimed resources may exceed the verifier's measurement by this factor (percent) plus slack,
# where the measurement is not exact (time, memory).
telemetry_tolerance_pct := 200

telemetry_slack := {"cpuMs": 50, "wallMs": 1000, "memoryBytes": 16777216}

# Byte counts are deterministic: claimed and measured must be equal.
exact_resources := {"inputBytes", "outputBytes"}

default allowed := false

allowed if {
	kind_ok
	count(reasons) == 0
}

decision := {"allowed": allowed, "reasons": reasons}

# Each check below is written as "not <the good case>", so that a missing field denies too.
reasons contains {"rule": "schema-version", "field": "schema"} if not schema_ok

schema_ok if input.schema == schema_version

reasons contains {"rule": "gate-known", "field": "gate"} if not gate_ok

gate_ok if gates[input.gate]

reasons contains {"rule": "kind-allowed", "field": "kind"} if not kind_ok

kind_ok if kinds[input.kind]

reasons contains {"rule": "payload-size", "field": "payload"} if not payload_size_ok

payload_size_ok if input.sizes.payloadBytes <= max_payload_bytes

reasons contains {"rule": "refs-count", "field": "refs"} if not refs_ok

refs_ok if input.sizes.refs <= max_refs

reasons contains {"rule": "budget-messages", "field": "sender"} if {
	input.counters.messages > max_messages_per_thread
}

reasons contains {"rule": limit.rule, "field": limit.field} if {
	some name, value in input.fields
	limit := field_limits[name]
	not within(value, limit)
}

reasons contains {"rule": "bounty-cap", "field": "payload.verifyBounty"} if {
	input.fields.verifyBounty > bounty_cap
}

# With a task class (the commit gate knows the task), that class's cap; without one (preflight and
# ingress judge the envelope alone), the largest cap of any class.
bounty_cap := bounty_caps[input.taskClass]

bounty_cap := default_bounty_cap if {
	input.taskClass
	not bounty_caps[input.taskClass]
}

bounty_cap := max_bounty_cap if not input.taskClass

max_bounty_cap := max({cap | some cap in bounty_caps} | {default_bounty_cap})

within(value, limit) if {
	value >= limit.min
	value <= limit.max
}

# ---- commit gate: a verifier's re-execution against the worker's COMMIT

reasons contains {"rule": "outputs-match", "field": "payload.outputs"} if {
	input.gate == "commit"
	not input.outputsMatch
}

reasons contains {"rule": "telemetry-cap", "field": "payload.telemetry.cpuMs"} if {
	input.gate == "commit"
	input.telemetry.claimed.cpuMs > cpu_cap_ms
}

cpu_cap_ms := cpu_caps_ms[input.taskClass]

cpu_cap_ms := default_cpu_cap_ms if not cpu_caps_ms[input.taskClass]

reasons contains {"rule": "telemetry-exact", "field": concat(".", ["payload.telemetry", name])} if {
	input.gate == "commit"
	some name in exact_resources
	input.telemetry.claimed[name] != input.telemetry.measured[name]
}

reasons contains {"rule": "telemetry-above-measured", "field": concat(".", ["payload.telemetry", name])} if {
	input.gate == "commit"
	some name, slack in telemetry_slack
	measured := input.telemetry.measured[name]
	input.telemetry.claimed[name] > ((measured * telemetry_tolerance_pct) / 100) + slack
}
