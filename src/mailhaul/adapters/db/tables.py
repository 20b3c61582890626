"""The database schema."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(320), nullable=False),
    # the owner's domain, lower case: domain admins' scope and the list's domain filter
    Column("owner_domain", String(255), nullable=False, default=""),
    Column("protocol", String(8), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("security", String(10), nullable=False),
    Column("verify_cert", Boolean, nullable=False, default=True),
    Column("ca_file", Text),
    Column("username", String(320), nullable=False),
    Column("password_enc", Text, nullable=False, default=""),
    Column("folders", Text, nullable=False),  # JSON list
    Column("keep", Boolean, nullable=False),
    Column("fetchall", Boolean, nullable=False),
    Column("flush", Boolean, nullable=False),
    Column("max_size", BigInteger, nullable=False),
    Column("deliver_to", String(320), nullable=False, default=""),
    Column("interval", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # service state
    Column("state", String(32), nullable=False, default="new"),
    Column("next_poll_at", Float),
    Column("last_run_at", Float),
    Column("last_result", String(32)),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("lease_owner", String(200)),
    Column("lease_expires", Float),
    # "fetch now": set by a user, cleared when a poll starts; puts the account first
    Column("fetch_requested_at", Float),
    # who asked for it (a run trigger: web, cli, api, cron); the scheduler takes it with the
    # claim and records it on the run
    Column("fetch_requested_by", String(16)),
    # set after too many login failures in a row; cleared by editing or enabling
    Column("paused_reason", Text),
    # sign-in: "password" (password_enc) or "oauth2" (a provider and the tokens it gave)
    Column("auth_method", String(16), nullable=False, server_default="password"),
    # the provider's row (no foreign key: the service refuses to delete one in use)
    Column("oauth_provider_id", Integer),
    Column("oauth_tokens_enc", Text, nullable=False, server_default=""),  # JSON, encrypted
    # why the provider refused the grant for good ("sign-in needed"); cleared by connecting
    Column("sign_in_problem", Text),
    # the checks before delivery: antispam off | tag | junk, antivirus off | quarantine
    Column("antispam", String(8), nullable=False, server_default="off"),
    Column("antivirus", String(16), nullable=False, server_default="off"),
    # IMAP IDLE: true, false, or NULL for the setting push.enabled
    Column("push", Boolean),
    # which folders and where each lands (domain/folders.py FolderRules, JSON; NULL: defaults)
    Column("rules", Text),
)
Index("ix_accounts_due", accounts.c.active, accounts.c.next_poll_at)
Index("ix_accounts_host", accounts.c.host)
Index("ix_accounts_owner", accounts.c.owner_domain, accounts.c.owner)

# OAuth2 clients registered by an admin; accounts signing in with OAuth2 name one.
oauth_providers = Table(
    "oauth_providers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("preset", String(16)),  # google, microsoft; NULL: endpoints given
    Column("grant", String(32), nullable=False),  # user, client-credentials
    Column("client_id", String(512), nullable=False),
    Column("client_secret_enc", Text, nullable=False, default=""),  # encrypted; "" = public
    Column("authorize_url", Text, nullable=False, default=""),
    Column("token_url", Text, nullable=False),
    Column("device_url", Text, nullable=False, default=""),
    Column("revoke_url", Text, nullable=False, default=""),
    Column("scope", Text, nullable=False),
    Column("tenant", String(255), nullable=False, default=""),
    Column("issuer", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# What was retrieved: one row per source message mailhaul delivered, refused or is
# delivering (pending). Keyed per folder and UIDVALIDITY (0 on POP3).
messages = Table(
    "messages",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("folder", String(1000), primary_key=True),
    Column("uidvalidity", BigInteger, primary_key=True),
    Column("uid", String(100), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("receipt", String(255)),
    Column("destination", String(320), nullable=False),
    Column("fingerprint", String(80)),
    Column("size", BigInteger, nullable=False, default=0),
    Column("recorded_at", Float, nullable=False),
    Column("note", Text),
    Column("gm_msgid", String(24)),  # Gmail's X-GM-MSGID: one delivery per message
)
Index("ix_messages_gm_msgid", messages.c.account_id, messages.c.gm_msgid)
Index("ix_messages_fingerprint", messages.c.account_id, messages.c.folder, messages.c.fingerprint)
Index("ix_messages_state", messages.c.account_id, messages.c.state)

folders = Table(
    "folders",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("folder", String(1000), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    # JSON: the folder's STATUS when a poll last found nothing to do (domain.quiet)
    Column("quiet", Text, nullable=True),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("trigger", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("result", String(16), nullable=False),  # running | ok | error | interrupted
    Column("fetched", Integer, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    # what the filter stage found: spam, viruses (quarantined), delivered unscanned
    Column("spam", Integer, nullable=False, server_default="0"),
    Column("viruses", Integer, nullable=False, server_default="0"),
    Column("unscanned", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("log", Text, nullable=False, default=""),
)
Index("ix_runs_account", runs.c.account_id, runs.c.id)
Index("ix_runs_started", runs.c.started_at)

# Infected messages kept out of the owner's mailbox (files in {home}/quarantine/<account>).
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(200), nullable=False),  # the file in the quarantine Maildir
    Column("folder", Text, nullable=False),
    Column("uid", String(200), nullable=False),
    Column("signature", Text, nullable=False),
    Column("scanner", String(16), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sender", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
)
Index("ix_quarantine_account", quarantine.c.account_id, quarantine.c.id)

# An account's trouble, from its first failing run to its next good one (issue 17).
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(32), nullable=False),  # failing | paused | destination_missing | …
    Column("opened_at", Float, nullable=False),  # the first failing run
    Column("closed_at", Float),  # the next good run (NULL: open)
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("reason", Text, nullable=False, server_default=""),  # the last error, scrubbed
    Column("notified_at", Float),  # when its notice was queued (NULL: not yet due)
)
Index("ix_incidents_account", incidents.c.account_id, incidents.c.closed_at)

# Notices to send: queued with the run's record, sent by the service (record, send, mark).
notices = Table(
    "notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "incident_id",
        Integer,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", String(32), nullable=False),  # account.failing | account.recovered
    Column("channel", String(16), nullable=False, server_default="mailbox"),  # | webhook
    Column("recipient", String(320), nullable=False),  # an address ("" for the webhook)
    Column("state", String(16), nullable=False),  # pending | sending | sent | failed
    Column("receipt", String(255)),  # the sink's receipt, recorded before delivery
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
)
Index("ix_notices_due", notices.c.state, notices.c.next_attempt_at)

# Processes running the scheduler (`serve`, `worker`), with a heartbeat.
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),  # host:pid:random, as lease owners
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("running", Integer, nullable=False, default=0),
)

# The push watcher of each watched account (IMAP IDLE), written by the serving process that
# holds it (its lease, renewed at heartbeats) so that every process can show the state.
push_watches = Table(
    "push_watches",
    metadata,
    Column(
        "account_id",
        Integer,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("worker_id", String(200), nullable=False),  # host:pid:random, as lease owners
    Column("lease_expires", Float, nullable=False),
    # connecting | watching | reconnecting | unsupported | waiting (a poll must sign in first)
    Column("state", String(16), nullable=False),
    Column("since", Float, nullable=False),  # when it entered the state
    Column("reason", Text, nullable=False, server_default=""),  # why (reconnecting, waiting)
    Column("events", Integer, nullable=False, server_default="0"),  # changes seen while held
    # connections the holder plans for the account (open, opening or to reopen): other
    # processes count them against the remote mailbox's cap
    Column("connections", Integer, nullable=False, server_default="0"),
)

# People who manage accounts through the web UI, the API and (as admin) the CLI.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("login", String(320), nullable=False, unique=True),  # lower case
    Column("role", String(16), nullable=False),  # admin | domain_admin | user
    Column("domains", Text, nullable=False, default="[]"),  # JSON list (domain admins)
    Column("password_hash", Text, nullable=False),  # argon2id
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_login_at", Float),
    # notices about the accounts this person is told about: "mailbox" (default) or "off"
    Column("notices", String(16), nullable=False, server_default="mailbox"),
)

# Web sessions; the cookie holds a random token, the table only its SHA-256.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_sessions_user", sessions.c.user_id)

# API keys (Bearer); only the SHA-256 of the key is stored, its prefix shown to tell keys apart.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
)
Index("ix_api_keys_user", api_keys.c.user_id)

# Settings an admin edits in the web UI, the API or `mailhaul settings` (settings.py's
# EDITABLE_SETTINGS and delivery.domains); between the environment and mailhaul.toml.
settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(320), nullable=False),  # the admin's login
)
