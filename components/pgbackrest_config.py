"""pgBackRest and PostgreSQL settings derived from the recovery objectives. Pure: no I/O, no Pulumi.

The ``PostgresBackup`` component (self-managed backend) renders its stack outputs with these
functions, ``drctl backup``/``drctl restore`` run pgBackRest with them, and the integration tests
run the very same rendered text against a real PostgreSQL 15 and pgBackRest. One place derives
each number; everything else renders it.

Two independent repositories, never one replicated one:

- ``repo1``: S3 bucket in the primary region (fast restores while the region is up);
- ``repo2``: S3 bucket in the DR region (restores after the primary region is lost).

``archive-push`` writes every WAL segment to both; each backup run writes to each repository in
turn. The ``posix`` variant (``posix_settings``) swaps the two buckets for two directories standing
for the two regions, for tests and ``drctl drill --local``.

Secrets never enter the rendered ``pgbackrest.conf``: the repository cipher passphrase (and S3
keys, where an instance profile is not used) go into a separate fragment
(``render_secret_conf``) that the host writes, mode 0600, into ``config-include-path``. The main
file can therefore be exported as a plain stack output and diffed in review.

The arithmetic, in one place:

* **WAL shipping and RPO.** A WAL segment is archived when it fills or when ``archive_timeout``
  expires. With ``archive-async`` Postgres hands the segment to a queue and pgBackRest's
  background process pushes it; ``archive-push`` waits at most pgBackRest's ``archive-timeout``
  for that push before failing (and Postgres retries). So the data at risk on a lost host is at
  most ``archive_timeout + archive-timeout`` seconds of writes::

      archive_timeout      = clamp(RPO / 3, 10 s, 1 h)
      push timeout         = clamp(RPO / 6, 10 s, 60 s)
      worst-case RPO       = archive_timeout + push timeout   (<= RPO / 2 by construction)

  For the default critical RPO of 15 min: 300 s + 60 s = 6 min, leaving half the objective for a
  slow S3 upload or a retry. Below an RPO of 60 s WAL archiving cannot promise it, and we say so
  (a ConfigError) rather than render settings that silently miss it.

* **Retention of fulls.** pgBackRest expires by count: after a new full completes it keeps the
  newest ``repo-retention-full`` fulls and the WAL after the oldest of them. With fulls every
  ``F`` days the newest full is ``a`` days old, ``0 <= a < F``, and the oldest kept of ``n`` is
  ``a + (n-1)F >= (n-1)F`` days old. To restore to any moment of the PITR window ``W`` *and* keep
  the previous monthly archive point (``A`` = 30 days) restorable, the oldest kept must be at
  least ``W + A`` old at all times::

      n = ceil((W + A) / F) + 1        defaults: ceil((7 + 30) / 7) + 1 = 7 fulls

  WAL retention follows the fulls (``repo-retention-archive = n``, type full), so PITR reaches
  back over the whole span, not just the window.

* **Retention of differentials.** Daily diffs are kept for the window plus one,
  ``ceil(W / D) + 1`` (8 by default), so a restore anywhere in the window replays at most a day
  of WAL on top of a diff instead of a week on top of a full.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from components.objectives import DAY, HOUR, ConfigError, Objectives, format_duration

DEFAULT_STANZA = "main"
CIPHER_TYPE = "aes-256-cbc"
COMPRESS_TYPES = ("zst", "lz4")
PGBACKREST_BIN = "/usr/bin/pgbackrest"
CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf"
CONFIG_INCLUDE_PATH = "/etc/pgbackrest/conf.d"
SECRET_CONF_NAME = "secrets.conf"
REPO_S3_PATH = "/pgbackrest"

# Bounds of the derivation above; see the module docstring.
MIN_ARCHIVE_TIMEOUT_S = 10
MAX_ARCHIVE_TIMEOUT_S = HOUR
MIN_PUSH_TIMEOUT_S = 10
MAX_PUSH_TIMEOUT_S = 60
MIN_ARCHIVABLE_RPO_S = 60

BACKUP_TYPES = ("full", "diff", "incr")
# pg_wal a replication slot may pin on the primary. Past it the slot is invalidated (wal_status
# 'lost') instead of filling the disk; the standby then catches up from repo2 (its
# restore_command) and the slot is re-created. The slot monitor alarms at 'unreserved', before.
MAX_SLOT_WAL_KEEP_SIZE = "64GB"


@dataclass(frozen=True)
class Repo:
    """One pgBackRest repository (``repoN-*`` options).

    Fields and defaults:
        index: 1 or 2 (repo1 = primary region, repo2 = DR region). Required.
        role: "primary" or "dr", for humans and for ``--from-repo`` help. Required.
        type: "s3" or "posix". Required.
        path: S3 key prefix ("/pgbackrest") or a directory for posix. Required.
        region, bucket: S3 only; required for s3.
        endpoint: S3 endpoint; default ``s3.<region>.amazonaws.com``.
        kms_key_id: SSE-KMS key for every object written (``repoN-s3-kms-key-id``); default none,
            which ``s3_settings`` never leaves empty.
        key_type: "auto" (instance profile; default) or "shared" (keys in the secret fragment).
        uri_style: "host" (default) or "path" (S3-compatible servers, moto).
        verify_tls: verify the storage TLS certificate; default True. Only tests turn it off.
        storage_host, storage_port: reach the endpoint through another host/port (a TLS proxy);
            default none (the endpoint itself on 443).
        retention_full, retention_diff: see the module docstring; default 2 and 1.
        cipher_type: repository encryption; default aes-256-cbc (passphrase in the secret
            fragment). "none" only when asked for by name.
        bundle: bundle small files into larger objects (fewer S3 PUTs); default True.
    """

    index: int
    role: str
    type: str
    path: str
    region: str = ""
    bucket: str = ""
    endpoint: str = ""
    kms_key_id: str = ""
    key_type: str = "auto"
    uri_style: str = "host"
    verify_tls: bool = True
    storage_host: str = ""
    storage_port: int | None = None
    retention_full: int = 2
    retention_diff: int = 1
    cipher_type: str = CIPHER_TYPE
    bundle: bool = True

    def options(self) -> dict[str, str]:
        """The non-secret ``repoN-*`` options, in a stable order."""
        p = f"repo{self.index}-"
        opts: dict[str, str] = {f"{p}type": self.type, f"{p}path": self.path}
        if self.type == "s3":
            opts |= {
                f"{p}s3-bucket": self.bucket,
                f"{p}s3-region": self.region,
                f"{p}s3-endpoint": self.endpoint or f"s3.{self.region}.amazonaws.com",
                f"{p}s3-key-type": self.key_type,
                f"{p}s3-uri-style": self.uri_style,
            }
            if self.kms_key_id:
                opts[f"{p}s3-kms-key-id"] = self.kms_key_id
            if self.storage_host:
                opts[f"{p}storage-host"] = self.storage_host
            if self.storage_port:
                opts[f"{p}storage-port"] = str(self.storage_port)
            opts[f"{p}storage-verify-tls"] = "y" if self.verify_tls else "n"
        opts |= {
            f"{p}cipher-type": self.cipher_type,
            f"{p}retention-full-type": "count",
            f"{p}retention-full": str(self.retention_full),
            f"{p}retention-diff": str(self.retention_diff),
            f"{p}retention-archive-type": "full",
            f"{p}retention-archive": str(self.retention_full),
            f"{p}bundle": "y" if self.bundle else "n",
        }
        return opts


@dataclass(frozen=True)
class PgBackRestSettings:
    """Everything ``pgbackrest.conf`` says, for one stanza.

    Fields and defaults:
        stanza: stanza name; default "main".
        pg_path: the cluster's data directory. Required.
        pg_port: default 5432.
        pg_socket_path: unix socket dir pgBackRest connects through; default /var/run/postgresql.
        repos: (repo1, repo2). Required.
        archive_async: queue WAL and push in the background; default True (keeps Postgres
            from stalling on a slow S3 PUT).
        archive_push_timeout_s: pgBackRest ``archive-timeout``, derived from the RPO.
        process_max: parallel compress/transfer processes; default 4.
        compress_type: "zst" (default: best ratio at near-lz4 speed) or "lz4".
        compress_level: default 3.
        spool_path, lock_path, log_path: default the Debian package's directories.
        config_path, config_include_path: where the host keeps the files; default /etc/pgbackrest.
        start_fast: checkpoint immediately when a backup starts; default True.
        extra: more ``[global]`` options, rendered verbatim after the derived ones; default none.
    """

    pg_path: str
    repos: tuple[Repo, ...]
    stanza: str = DEFAULT_STANZA
    pg_port: int = 5432
    pg_socket_path: str = "/var/run/postgresql"
    archive_async: bool = True
    archive_push_timeout_s: int = MAX_PUSH_TIMEOUT_S
    process_max: int = 4
    compress_type: str = "zst"
    compress_level: int = 3
    spool_path: str = "/var/spool/pgbackrest"
    lock_path: str = "/tmp/pgbackrest"
    log_path: str = "/var/log/pgbackrest"
    config_path: str = CONFIG_PATH
    config_include_path: str = CONFIG_INCLUDE_PATH
    start_fast: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.compress_type not in COMPRESS_TYPES:
            raise ConfigError("compressType", self.compress_type, "zst or lz4")
        if not self.stanza or not all(c.isalnum() or c in "-_" for c in self.stanza):
            raise ConfigError("stanza", self.stanza, "letters, digits, '-' and '_' only")
        if sorted(r.index for r in self.repos) != list(range(1, len(self.repos) + 1)):
            raise ConfigError("repos", [r.index for r in self.repos], "repo1, repo2, ... in order")
        for repo in self.repos:
            if repo.type not in ("s3", "posix"):
                raise ConfigError(f"repo{repo.index}-type", repo.type, "s3 or posix")
            if repo.type == "s3" and not (repo.bucket and repo.region):
                raise ConfigError(f"repo{repo.index}-s3-bucket", repo.bucket, "a bucket and region")

    def repo(self, index: int) -> Repo:
        for repo in self.repos:
            if repo.index == index:
                return repo
        allowed = ", ".join(str(r.index) for r in self.repos)
        raise ConfigError("repo", index, f"one of {allowed}")

    @property
    def base_command(self) -> list[str]:
        """pgbackrest with this config and stanza; append options and the command name."""
        return pgbackrest_command(self.stanza, self.config_path, self.config_include_path)


def pgbackrest_command(
    stanza: str = DEFAULT_STANZA,
    config_path: str = CONFIG_PATH,
    config_include_path: str = CONFIG_INCLUDE_PATH,
) -> list[str]:
    """argv prefix that pins the config files and the stanza, so no default file is read."""
    return [
        PGBACKREST_BIN,
        f"--config={config_path}",
        f"--config-include-path={config_include_path}",
        f"--stanza={stanza}",
    ]


# -- derivations from the objectives -------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveTiming:
    """WAL shipping timing derived from the critical RPO (module docstring, first bullet)."""

    rpo_s: int
    archive_timeout_s: int
    push_timeout_s: int

    @property
    def worst_case_rpo_s(self) -> int:
        return self.archive_timeout_s + self.push_timeout_s


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def archive_timing(objectives: Objectives) -> ArchiveTiming:
    """archive_timeout and the push timeout for the critical class; ConfigError if unreachable."""
    rpo = objectives.of("critical").rpo_s
    if rpo < MIN_ARCHIVABLE_RPO_S:
        raise ConfigError(
            "criticalRpo",
            format_duration(rpo),
            f"at least {MIN_ARCHIVABLE_RPO_S}s for WAL archiving to meet it with margin "
            "(archive_timeout + push timeout <= RPO/2)",
        )
    timing = ArchiveTiming(
        rpo_s=rpo,
        archive_timeout_s=_clamp(rpo // 3, MIN_ARCHIVE_TIMEOUT_S, MAX_ARCHIVE_TIMEOUT_S),
        push_timeout_s=_clamp(rpo // 6, MIN_PUSH_TIMEOUT_S, MAX_PUSH_TIMEOUT_S),
    )
    return timing


def worst_case_rpo_s(objectives: Objectives) -> int:
    """Data a lost primary can take with it under the derived settings, for posture."""
    return archive_timing(objectives).worst_case_rpo_s


def retention_full(objectives: Objectives) -> int:
    """Fulls to keep: ceil((W + A) / F) + 1 (module docstring, second bullet)."""
    sched = objectives.schedule
    span = objectives.pitr_window_days * DAY + sched.archive_s
    return math.ceil(span / sched.full_s) + 1


def retention_diff(objectives: Objectives) -> int:
    """Differentials to keep: ceil(W / D) + 1 (module docstring, third bullet)."""
    return math.ceil(objectives.pitr_window_days * DAY / objectives.schedule.differential_s) + 1


def s3_settings(
    objectives: Objectives,
    *,
    bucket_names: Mapping[str, str],
    kms_key_ids: Mapping[str, str],
    pg_path: str = "/var/lib/postgresql/15/main",
    stanza: str = DEFAULT_STANZA,
    path: str = REPO_S3_PATH,
    **overrides,
) -> PgBackRestSettings:
    """Settings for repo1 = bucket in the primary region, repo2 = bucket in the DR region.

    ``bucket_names`` and ``kms_key_ids`` map region -> bucket name / KMS key ARN (the
    ``ReplicatedBucket`` outputs). Every object is written with SSE-KMS under the region's key
    and, on top, encrypted client-side by pgBackRest (aes-256-cbc).
    ``overrides`` go to ``PgBackRestSettings`` (e.g. ``pg_port``) or, prefixed ``repo_``, to both
    repos (e.g. ``repo_uri_style="path"`` for an S3-compatible endpoint).
    """
    repo_over = {k[5:]: v for k, v in overrides.items() if k.startswith("repo_")}
    top_over = {k: v for k, v in overrides.items() if not k.startswith("repo_")}
    repos = []
    for index, (role, region) in enumerate(
        (("primary", objectives.regions.primary), ("dr", objectives.regions.dr)), start=1
    ):
        for what, mapping in (("bucket", bucket_names), ("KMS key", kms_key_ids)):
            if not mapping.get(region):
                raise ConfigError(
                    f"repo{index}",
                    region,
                    f"a {what} in region {region} (given: {', '.join(mapping) or 'none'})",
                )
        repos.append(
            Repo(
                index=index,
                role=role,
                type="s3",
                path=path,
                region=region,
                bucket=bucket_names[region],
                kms_key_id=kms_key_ids[region],
                retention_full=retention_full(objectives),
                retention_diff=retention_diff(objectives),
                **repo_over,
            )
        )
    return PgBackRestSettings(
        pg_path=pg_path,
        repos=tuple(repos),
        stanza=stanza,
        archive_push_timeout_s=archive_timing(objectives).push_timeout_s,
        **top_over,
    )


def posix_settings(
    objectives: Objectives,
    *,
    repo1_path: str,
    repo2_path: str,
    pg_path: str,
    stanza: str = DEFAULT_STANZA,
    **overrides,
) -> PgBackRestSettings:
    """The local variant: two directories standing for the primary and the DR region.

    Same retention, cipher, compression and archive timing as ``s3_settings``, so tests and the
    local drill exercise the production derivation. ``overrides`` as in ``s3_settings``.
    """
    repo_over = {k[5:]: v for k, v in overrides.items() if k.startswith("repo_")}
    top_over = {k: v for k, v in overrides.items() if not k.startswith("repo_")}
    repos = tuple(
        Repo(
            index=index,
            role=role,
            type="posix",
            path=path,
            retention_full=retention_full(objectives),
            retention_diff=retention_diff(objectives),
            **repo_over,
        )
        for index, role, path in ((1, "primary", repo1_path), (2, "dr", repo2_path))
    )
    return PgBackRestSettings(
        pg_path=pg_path,
        repos=repos,
        stanza=stanza,
        archive_push_timeout_s=archive_timing(objectives).push_timeout_s,
        **top_over,
    )


# -- rendering -------------------------------------------------------------------------------------


def _yn(value: bool) -> str:
    return "y" if value else "n"


def render_pgbackrest_conf(settings: PgBackRestSettings) -> str:
    """pgbackrest.conf text. Holds no secret: see ``render_secret_conf``."""
    glob: dict[str, str] = {}
    for repo in settings.repos:
        glob |= repo.options()
    glob |= {
        "archive-async": _yn(settings.archive_async),
        "archive-timeout": str(settings.archive_push_timeout_s),
        "spool-path": settings.spool_path,
        "lock-path": settings.lock_path,
        "log-path": settings.log_path,
        "log-level-console": "warn",
        "log-level-file": "info",
        "process-max": str(settings.process_max),
        "compress-type": settings.compress_type,
        "compress-level": str(settings.compress_level),
        "start-fast": _yn(settings.start_fast),
        **settings.extra,
    }
    stanza = {
        "pg1-path": settings.pg_path,
        "pg1-port": str(settings.pg_port),
        "pg1-socket-path": settings.pg_socket_path,
    }
    lines = [
        "# Rendered by components/pgbackrest_config.py from the stack's objectives; do not edit.",
        "# " + "; ".join(f"repo{r.index} = {_describe(r)}" for r in settings.repos) + ".",
        "# Secrets (cipher passphrase, S3 keys) live in config-include-path, never here.",
        "[global]",
        *(f"{k}={v}" for k, v in glob.items()),
        "",
        "[global:archive-push]",
        # Compressing WAL at the lowest level keeps archive-push ahead of a busy primary.
        "compress-level=1",
        "",
        f"[{settings.stanza}]",
        *(f"{k}={v}" for k, v in stanza.items()),
        "",
    ]
    return "\n".join(lines)


def _describe(repo: Repo) -> str:
    if repo.type == "s3":
        return f"s3://{repo.bucket}{repo.path} ({repo.role}, {repo.region})"
    return f"{repo.path} ({repo.role}, posix)"


def render_secret_conf(
    settings: PgBackRestSettings,
    cipher_passes: Mapping[int, str],
    s3_keys: Mapping[int, tuple[str, str]] | None = None,
) -> str:
    """The secret fragment for ``config-include-path`` (write it mode 0600, owner postgres).

    ``cipher_passes`` maps repo index -> passphrase (required for every encrypted repo);
    ``s3_keys`` maps repo index -> (access key, secret key) for repos with key_type "shared".
    """
    lines = ["[global]"]
    for repo in settings.repos:
        if repo.cipher_type != "none":
            if not cipher_passes.get(repo.index):
                raise ConfigError(f"repo{repo.index}-cipher-pass", "(missing)", "a passphrase")
            lines.append(f"repo{repo.index}-cipher-pass={cipher_passes[repo.index]}")
        if repo.type == "s3" and repo.key_type == "shared":
            key = (s3_keys or {}).get(repo.index)
            if not key:
                raise ConfigError(f"repo{repo.index}-s3-key", "(missing)", "an access key pair")
            lines += [
                f"repo{repo.index}-s3-key={key[0]}",
                f"repo{repo.index}-s3-key-secret={key[1]}",
            ]
    return "\n".join(lines) + "\n"


def postgres_settings(
    objectives: Objectives,
    settings: PgBackRestSettings | None = None,
    *,
    max_slot_wal_keep_size: str = MAX_SLOT_WAL_KEEP_SIZE,
) -> dict[str, str]:
    """postgresql.conf settings for continuous archiving to the stanza's repositories.

    Both hosts get the same file: on the DR standby ``archive_mode = on`` archives nothing until
    it is promoted, and then it archives at once (after the re-arm step pointed pgBackRest at the
    repositories that survived).
    """
    timing = archive_timing(objectives)
    base = settings.base_command if settings else pgbackrest_command()
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": shlex.join(base) + " archive-push %p",
        "archive_timeout": f"{timing.archive_timeout_s}s",
        # The DR standby streams through a physical slot; room for it, pg_basebackup and one more.
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_slot_wal_keep_size": max_slot_wal_keep_size,
        # pg_rewind needs hint-bit changes in WAL when the cluster has no data checksums (most
        # existing Supabase-style clusters): without it failback means a full re-copy.
        "wal_log_hints": "on",
    }


def restore_command(settings: PgBackRestSettings | None = None, repo: int = 2) -> str:
    """The standby's restore_command: WAL from the DR repository (repo2), never the primary's.

    After a dropped or invalidated slot the standby replays from here what streaming can no
    longer give it, instead of needing a full re-seed over the WAN.
    """
    base = settings.base_command if settings else pgbackrest_command()
    return shlex.join([*base, f"--repo={repo}", "archive-get"]) + ' %f "%p"'


def rearm_settings(
    settings: PgBackRestSettings, new_repo: Repo | None = None
) -> PgBackRestSettings:
    """pgBackRest settings for the promoted DR primary: the repositories that survive.

    The primary region's repo1 is gone with its region, and pgBackRest 2.45's archive-push fails
    while any configured repository is unreachable, so it leaves the config. The DR repository
    (repo2 before) becomes repo1 (pgBackRest accepts a lone repository only as repo1); a
    repository in a newly configured region, if any, becomes repo2.
    """
    dr = next(r for r in settings.repos if r.role == "dr")
    repos = [replace(dr, index=1)]
    if new_repo is not None:
        repos.append(replace(new_repo, index=2, role="dr"))
    return replace(settings, repos=tuple(repos))


def render_postgres_conf(
    objectives: Objectives, settings: PgBackRestSettings, **overrides: str
) -> str:
    """postgresql.conf fragment (conf.d/) of ``postgres_settings`` (``overrides`` go to it)."""
    timing = archive_timing(objectives)
    head = [
        "# Rendered by components/pgbackrest_config.py; do not edit.",
        f"# archive_timeout = critical RPO {format_duration(timing.rpo_s)} / 3, clamped; worst-case"
        f" RPO = {timing.archive_timeout_s}s + push timeout {timing.push_timeout_s}s"
        f" = {timing.worst_case_rpo_s}s.",
    ]
    body = [
        f"{k} = '{v.replace(chr(39), chr(39) * 2)}'"
        for k, v in postgres_settings(objectives, settings, **overrides).items()
    ]
    return "\n".join(head + body) + "\n"
