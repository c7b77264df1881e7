"""platform-dr: read config -> objectives -> build components -> export outputs.

Kept thin on purpose: every decision lives in components/objectives.py or a component.
"""

import sys

import pulumi

from components.alerts import AlertTopics, AlertTopicsArgs
from components.objectives import ConfigError, ObjectivesRecord, load_objectives

try:
    objectives = load_objectives()
except ConfigError as err:
    # One short paragraph naming the key, never a traceback: the same text drctl posture prints.
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2) from None

ObjectivesRecord("objectives", objectives)
regions = objectives.regions

# CloudWatch Route 53 health-check metrics only exist in us-east-1, so it always gets a topic.
alerts = AlertTopics("alerts", AlertTopicsArgs(regions=[*regions.all, "us-east-1"]))

pulumi.export("regions", {"primary": regions.primary, "dr": regions.dr, "third": regions.third})
pulumi.export("alertTopicArns", alerts.topic_arns)
