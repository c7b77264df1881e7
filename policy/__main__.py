"""The platform-dr CrossGuard pack: `pulumi preview --policy-pack policy`.

The Pulumi policy host runs this file with policy/ on sys.path. Every policy comes from the rules
in rules.py (through pack.build_policies), the same rules `drctl posture` applies, and all of them
are mandatory: a stack that cannot meet its objectives or drops a secure default does not deploy.
"""

import pack
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=pack.PACK_NAME,
    policies=pack.build_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="platform-dr: recovery objectives per data class and the secure defaults.",
)
