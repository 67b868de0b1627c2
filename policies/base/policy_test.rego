# Conformance tests: one Rego unit test per vector of conformance.rego, named after its stable id
# (test_conf_kind_001 checks "conf-kind-001"). The build records the ids of passing tests as the
# capsule's conformance vector.
package canswarm.base_test

import data.canswarm.base
import data.canswarm.conformance

# The decision for a vector matches its expectation: allowed, and exactly the expected rules deny.
conforms(id) if {
	vector := conformance.vectors[id]
	decision := base.decision with input as vector.input
	decision.allowed == vector.expect.allowed
	{reason.rule | some reason in decision.reasons} == {rule | some rule in vector.expect.rules}
}

# Every vector has a test below (a vector without one would never be checked).
test_conf_meta_001 if count(conformance.vectors) == 32

test_conf_good_001 if conforms("conf-good-001")
test_conf_good_002 if conforms("conf-good-002")
test_conf_good_003 if conforms("conf-good-003")
test_conf_kind_001 if conforms("conf-kind-001")
test_conf_kind_002 if conforms("conf-kind-002")
test_conf_kind_003 if conforms("conf-kind-003")
test_conf_schema_001 if conforms("conf-schema-001")
test_conf_schema_002 if conforms("conf-schema-002")
test_conf_size_003 if conforms("conf-size-003")
test_conf_gate_001 if conforms("conf-gate-001")
test_conf_size_001 if conforms("conf-size-001")
test_conf_size_002 if conforms("conf-size-002")
test_conf_refs_001 if conforms("conf-refs-001")
test_conf_credits_001 if conforms("conf-credits-001")
test_conf_credits_002 if conforms("conf-credits-002")
test_conf_messages_001 if conforms("conf-messages-001")
test_conf_messages_002 if conforms("conf-messages-002")
test_conf_retries_001 if conforms("conf-retries-001")
test_conf_ttl_001 if conforms("conf-ttl-001")
test_conf_ttl_002 if conforms("conf-ttl-002")
test_conf_bounty_001 if conforms("conf-bounty-001")
test_conf_bounty_002 if conforms("conf-bounty-002")
test_conf_bounty_003 if conforms("conf-bounty-003")
test_conf_bounty_004 if conforms("conf-bounty-004")
test_conf_bounty_005 if conforms("conf-bounty-005")
test_conf_commit_001 if conforms("conf-commit-001")
test_conf_commit_002 if conforms("conf-commit-002")
test_conf_commit_007 if conforms("conf-commit-007")

test_conf_commit_003 if conforms("conf-commit-003")
test_conf_commit_004 if conforms("conf-commit-004")
test_conf_commit_005 if conforms("conf-commit-005")
test_conf_commit_006 if conforms("conf-commit-006")
