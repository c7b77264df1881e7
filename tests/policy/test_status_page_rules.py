"""The status page's AWS-semantics rules (policy/status_page_rules.py): a compliant and a
non-compliant fixture per rule (merged into CASES of test_rules.py, so the pack tests run them
too), the real stacks' status page checked, and the cross-resource check failing when one half
of the CloudFront grant is missing."""

from __future__ import annotations

import copy
import json

import pytest

from policy import rules
from policy import status_page_rules as spr

DIST_ARN = "arn:aws:cloudfront::111122223333:distribution/E2QWRUHEXAMPLE"
OTHER_ARN = "arn:aws:cloudfront::111122223333:distribution/E9OTHEREXAMPLE"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _bucket_grant(**overrides) -> dict:
    statement = {
        "Sid": "AllowCloudFrontServicePrincipalReadOnly",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::status-page-us-west-2-x/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": DIST_ARN}},
    }
    statement.update(overrides)
    return statement


def _key_grant(**overrides) -> dict:
    statement = {
        "Sid": "AllowCloudFrontServicePrincipalSSE-KMS",
        "Effect": "Allow",
        "Principal": {"Service": ["cloudfront.amazonaws.com"]},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"AWS:SourceArn": DIST_ARN}},
    }
    statement.update(overrides)
    return statement


ADMIN = {
    "Sid": "AccountAdministers",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def _distribution(**overrides) -> dict:
    props = {
        "origins": [
            {
                "originId": "home",
                "domainName": "status-page-us-west-2-x.s3.us-west-2.amazonaws.com",
                "originAccessControlId": "E1OAC",
                "connectionAttempts": 1,
                "connectionTimeout": 3,
            },
            {
                "originId": "failover",
                "domainName": "status-page-eu-west-1-x.s3.eu-west-1.amazonaws.com",
                "originAccessControlId": "E1OAC",
            },
        ],
        "originGroups": [
            {
                "originId": "copies",
                "failoverCriteria": {"statusCodes": [403, 404, 500, 502, 503, 504]},
                "members": [{"originId": "home"}, {"originId": "failover"}],
            }
        ],
        "defaultCacheBehavior": {
            "targetOriginId": "copies",
            "viewerProtocolPolicy": "redirect-to-https",
            "allowedMethods": ["GET", "HEAD", "OPTIONS"],
            "cachedMethods": ["GET", "HEAD"],
        },
    }
    props.update(overrides)
    return props


def _with_origin(index: int, **changes) -> dict:
    props = _distribution()
    props["origins"][index].update(changes)
    return props


STATUS_PAGE_CASES: dict[str, tuple[dict, dict, str]] = {
    "cloudfront-s3-origins-use-oac": (
        _distribution(),
        _with_origin(1, originAccessControlId=None),
        "without an origin access control",
    ),
    "cloudfront-origin-failover": (
        _distribution(),
        # one origin only: nothing answers when its region is down
        _distribution(
            defaultCacheBehavior={
                "targetOriginId": "home",
                "viewerProtocolPolicy": "redirect-to-https",
                "allowedMethods": ["GET", "HEAD"],
            }
        ),
        "not an origin group",
    ),
    "cloudfront-viewer-https": (
        _distribution(),
        _distribution(
            defaultCacheBehavior={
                **_distribution()["defaultCacheBehavior"],
                "viewerProtocolPolicy": "allow-all",
            }
        ),
        "plain HTTP",
    ),
    "cloudfront-oac-signs-s3": (
        {
            "originAccessControlOriginType": "s3",
            "signingBehavior": "always",
            "signingProtocol": "sigv4",
        },
        {
            "originAccessControlOriginType": "s3",
            "signingBehavior": "never",
            "signingProtocol": "sigv4",
        },
        "'always'",
    ),
    "s3-cloudfront-grant-scoped": (
        {"bucket": "b", "policy": _doc(_bucket_grant())},
        {"bucket": "b", "policy": _doc(_bucket_grant(Condition={}))},
        "without a StringEquals AWS:SourceArn",
    ),
    "kms-cloudfront-grant-scoped": (
        {"policy": _doc(ADMIN, _key_grant())},
        {"policy": _doc(ADMIN, _key_grant(Action=["kms:Encrypt"]))},
        "no kms:Decrypt",
    ),
    "kms-replica-cloudfront-grant-scoped": (
        {"policy": _doc(ADMIN, _key_grant())},
        {
            "policy": _doc(
                ADMIN,
                _key_grant(
                    Condition={
                        "StringEquals": {
                            "AWS:SourceArn": "arn:aws:cloudfront::111122223333:distribution/*"
                        }
                    }
                ),
            )
        },
        "is not one distribution's ARN",
    ),
}
# A bucket or key policy without a CloudFront statement grants CloudFront nothing.
STATUS_PAGE_EMPTY_IS_COMPLIANT = {
    "s3-cloudfront-grant-scoped": "no statement grants CloudFront",
    "kms-cloudfront-grant-scoped": "no statement grants CloudFront",
    "kms-replica-cloudfront-grant-scoped": "no statement grants CloudFront",
}


@pytest.mark.parametrize(
    ("rule", "props", "phrase"),
    [
        # An S3 website endpoint cannot be signed by OAC: the bucket would have to be public.
        (
            "cloudfront-s3-origins-use-oac",
            _with_origin(0, domainName="status-page.s3-website-us-west-2.amazonaws.com"),
            "website endpoint",
        ),
        # The legacy origin access identity cannot read SSE-KMS objects.
        (
            "cloudfront-s3-origins-use-oac",
            _with_origin(0, s3OriginConfig={"originAccessIdentity": "origin-access-identity/x"}),
            "legacy origin access identity",
        ),
        # Both copies in one region: losing it loses the page.
        (
            "cloudfront-origin-failover",
            _with_origin(1, domainName="other.s3.us-west-2.amazonaws.com"),
            "two regions",
        ),
        # CloudFront does not fail over on a POST.
        (
            "cloudfront-origin-failover",
            _distribution(
                defaultCacheBehavior={
                    **_distribution()["defaultCacheBehavior"],
                    "allowedMethods": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
                }
            ),
            "fails over only GET, HEAD and OPTIONS",
        ),
        # The defaults: 3 attempts of 10 s before failover.
        (
            "cloudfront-origin-failover",
            _with_origin(0, connectionAttempts=None, connectionTimeout=None),
            "3 x 10 s",
        ),
        (
            "cloudfront-origin-failover",
            _distribution(
                originGroups=[
                    {
                        "originId": "copies",
                        "failoverCriteria": {"statusCodes": [404]},
                        "members": [{"originId": "home"}, {"originId": "failover"}],
                    }
                ]
            ),
            "does not fail over on [500, 502, 503, 504]",
        ),
        # Every distribution in every account could read through an unscoped grant.
        (
            "s3-cloudfront-grant-scoped",
            {"policy": _doc(_bucket_grant(Action="s3:*"))},
            "CloudFront reads only",
        ),
        (
            "kms-cloudfront-grant-scoped",
            {"policy": _doc(ADMIN, _key_grant(Condition={}))},
            "without a StringEquals AWS:SourceArn",
        ),
    ],
)
def test_more_ways_to_break_the_page(rule, props, phrase):
    check = {r.name: r for r in spr.RULES}[rule].check
    problems = check(props)
    assert any(phrase in p for p in problems), problems


def test_rules_are_registered_in_the_shared_rule_list():
    names = {r.name for r in rules.RESOURCE_RULES}
    assert {r.name for r in spr.RULES} <= names
    assert spr.status_page_mechanisms in rules.MECHANISM_EXTRACTORS


def _resources(evaluation) -> list[rules.Resource]:
    return [rules.Resource(r.type, r.name, copy.deepcopy(r.inputs)) for r in evaluation.resources]


@pytest.mark.parametrize("stack", ["prod", "dr"])
def test_the_declared_page_is_linked_and_met(stack, request):
    resources = _resources(request.getfixturevalue(stack))
    objectives = rules.objectives_of(resources)
    (page,) = [m for m in spr.status_page_mechanisms(resources, objectives)]
    assert page.problems == []
    regions = objectives["regions"]
    assert f"reads {regions['dr']} then {regions['third']}" in page.description
    named = rules.by_name(resources)
    cdn = named["status-page-cdn"].props
    assert spr.cloudfront_fails_over_between_regions(cdn) == []
    # the grants name exactly one distribution, the same in the bucket policy and the key
    for region in (regions["dr"], regions["third"]):
        policy = named[f"status-page-site-{region}-policy"].props["policy"]
        key = named[f"status-page-site-key-{region}"].props["policy"]
        assert spr._cloudfront_source_arns(policy) == spr._cloudfront_source_arns(key)
        assert len(spr._cloudfront_source_arns(key)) == 1


@pytest.mark.parametrize("half", ["bucket policy", "key policy"])
def test_a_missing_half_of_the_grant_makes_the_class_not_met(prod, half):
    """The fault: one copy's bucket policy (or its key policy) no longer names the distribution,
    as after someone replaces it by hand. Each rule alone still passes; the page serves 403."""
    resources = _resources(prod)
    objectives = rules.objectives_of(resources)
    dr = objectives["regions"]["dr"]
    name = (
        f"status-page-site-{dr}-policy" if half == "bucket policy" else f"status-page-site-key-{dr}"
    )
    target = rules.by_name(resources)[name]
    doc = json.loads(target.props["policy"])
    doc["Statement"] = [s for s in doc["Statement"] if "CloudFront" not in s.get("Sid", "")]
    target.props["policy"] = json.dumps(doc)
    assert rules.resource_violations([target]) == []  # no single rule sees it
    verdicts = {v.name: v for v in rules.class_verdicts(resources, objectives)}
    assert not verdicts["operational"].met
    assert any(
        f"the {dr}" in p and "no distribution" in p for p in verdicts["operational"].problems
    )


def test_a_key_naming_another_distribution_is_caught(prod):
    resources = _resources(prod)
    objectives = rules.objectives_of(resources)
    third = objectives["regions"]["third"]
    key = rules.by_name(resources)[f"status-page-site-key-{third}"]
    key.props["policy"] = key.props["policy"].replace(
        json.loads(key.props["policy"])["Statement"][1]["Condition"]["StringEquals"][
            "AWS:SourceArn"
        ],
        OTHER_ARN,
    )
    (page,) = spr.status_page_mechanisms(resources, objectives)
    assert any("but the key grants" in p for p in page.problems)
