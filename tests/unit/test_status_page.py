"""StatusPage under Pulumi's mocks: what the prod stack declares, and bad arguments refused
before any resource."""

from __future__ import annotations

import pytest

from components.objectives import ConfigError, parse_objectives
from components.status_page import StatusPageArgs, _validate
from scripts.local.evaluate import read_stack_config


def test_the_page_is_served_from_the_dr_copy_then_the_third(prod):
    cdn = prod.named("status-page-cdn").inputs
    buckets = prod.outputs["statusPage"]["bucketNames"]
    home, failover = (o["domainName"] for o in cdn["origins"])
    assert home == f"{buckets['us-west-2']}.s3.us-west-2.amazonaws.com"
    assert failover == f"{buckets['eu-west-1']}.s3.eu-west-1.amazonaws.com"
    assert cdn["defaultRootObject"] == "index.html"
    assert cdn["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    oac = prod.named("status-page-oac").inputs
    assert (oac["signingBehavior"], oac["signingProtocol"]) == ("always", "sigv4")
    # the home copy replicates to the other two; none of it depends on the primary region
    replication = prod.named("status-page-site-replication").inputs
    assert replication["region"] == "us-west-2"
    assert [r["id"] for r in replication["rules"]] == ["to-eu-west-1", "to-us-east-1"]
    assert prod.outputs["statusPage"]["homeRegion"] == "us-west-2"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"home_region": "us-east-1"}, "statusPage.homeRegion"),
        ({"failover_region": "us-west-2"}, "statusPage.failoverRegion"),
        ({"failover_timeout_s": 30}, "statusPage.failoverTimeout"),
        ({"price_class": "PriceClass_Cheap"}, "statusPage.priceClass"),
    ],
)
def test_bad_arguments_are_refused(overrides, key):
    objectives = parse_objectives(read_stack_config("prod"), "prod")
    with pytest.raises(ConfigError) as raised:
        _validate(StatusPageArgs(objectives, **overrides))
    assert raised.value.key == key
