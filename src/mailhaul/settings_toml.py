"""The ``mailhaul.toml`` that ``mailhaul init`` writes: every setting with its default and a
word on what it does (the keys themselves are in ``settings_keys``)."""

from __future__ import annotations

DEFAULT_TOML = """\
# mailhaul settings. Environment variables MAILHAUL_<SECTION>_<KEY> override these,
# command-line flags override both. An admin may also change some (poll.interval, max_size,
# per_host_limit, max_backoff, auth_failures_to_pause, runs.keep_days, sources.*, per-domain
# delivery) in the web UI or with `mailhaul settings set`: stored in the database, they
# override this file. This file is read at start: restart to apply an edit.

[database]
# url = "sqlite:///{home}/mailhaul.db"   # or postgresql://user@host/db

[delivery]
method = "maildir"    # maildir | lmtp | smtp | mda
# Maildir per destination address; {home}, {address}, {domain}, {local} are filled in.
maildir_path = "{home}/mail/{domain}/{local}"
# lmtp = "127.0.0.1:24"            # host:port, or the path of a unix socket
# smtp = "127.0.0.1:25"            # host:port of the MTA or relay
# smtp_starttls = false
# smtp_username = ""               # AUTH for a relay; the password is read from:
# smtp_password_file = ""
# mda = "/usr/lib/dovecot/dovecot-lda -d {address} -f {sender}"   # run without a shell
# timeout = 120                    # seconds for one LMTP/SMTP/MDA delivery
# sender = ""                      # fixed envelope sender; default Return-Path, else From, else <>
# lmtp_folder_detail = "+"         # the LMTP server files local+Junk@domain into Junk (Dovecot:
#                                  # recipient_delimiter = +, lmtp_save_to_detail_mailbox = yes)

# Per-domain overrides take the same keys, e.g.:
# [delivery.domains."example.org"]
# method = "lmtp"
# lmtp = "/var/run/dovecot/lmtp"

[poll]
interval = 300        # default seconds between polls of an account
timeout = 60          # network timeout, seconds
workers = 4           # accounts polled at once by `mailhaul serve`
max_size = 104857600  # default per-message size limit, bytes
per_host_limit = 4    # polls of accounts on one source host at once (per process)
max_backoff = 21600   # longest wait after repeated failures, seconds
auth_failures_to_pause = 5  # login failures in a row before an account is paused
lease_ttl = 300       # seconds a dead process's lease blocks an account
stall_timeout = 1800  # a run with no command answered and no message data this long ends
stop_grace = 60       # on SIGTERM, seconds running polls get before their connections are cut

[runs]
keep_days = 30        # run history (and run logs) older than this is deleted; 0 keeps all

[log]
format = "text"       # text | json (one JSON object a line: ts, level, logger, message, ...)
level = "info"        # debug | info | warning | error
syslog = false        # also log to /dev/log, facility mail (lands in /var/log/maillog)

[web]
listen = "127.0.0.1:8025"   # the web UI, /api/v1, /healthz and /metrics; "" switches it off
cookie_secure = true        # session cookies only over HTTPS (browsers also allow localhost)
session_hours = 12          # a login lasts this long
public_url = ""             # how people reach the web UI ("https://mail.example.org/fetch"):
                            # notices link to the account's page with it
trusted_proxies = ""        # reverse proxies whose X-Forwarded-For is believed ("127.0.0.1",
                            # "10.0.0.0/8, ::1"); none by default: the peer address counts

[push]
# New mail within seconds: IMAP accounts with push on are watched with IDLE while `serve` or
# `worker` runs; each change asks for the account's poll (polling on the interval goes on).
enabled = true                # the default of accounts that do not say (`--push/--no-push`)
connects_per_second = 5.0     # watcher connections opened per second (a restart is spread)
keepalive = 300               # seconds between DONE/IDLE round trips that find dead connections

[limits]
# Providers' limits count per account, by source host ("host=value, ..."; "*" for any
# other host, none without it). An account past its daily download budget waits until
# enough of the last 24 hours' bytes fall out (state "daily limit", not an error); Gmail
# suspends IMAP past about 2,500 MB a day (1,250 MB over POP3).
daily_bytes_per_host = '''
imap.gmail.com=2500M, imap.googlemail.com=2500M, pop.gmail.com=1250M, pop.googlemail.com=1250M'''
# Connections mailhaul holds at once for one account: one for polling, the rest may push
# (IMAP IDLE). Gmail allows 15, Exchange Online 16: the rest is left to the user's apps.
connections_per_account = "imap.gmail.com=7, imap.googlemail.com=7, outlook.office365.com=8, *=4"

[sources]
# Source hosts non-admin users may enter: by default no loopback, private or link-local
# addresses, and only these ports. Admins may use any.
allow_private = false
allowed_ports = "110,143,993,995"

[filter]
# Spam and virus checks before delivery, per account (`--antispam`, `--antivirus`).
# rspamd = "http://127.0.0.1:11333"   # rspamd's normal worker (/checkv2); wins over spamd
# spamd = "127.0.0.1:783"             # or SpamAssassin's spamd: host:port or a socket path
# clamd = "/run/clamav/clamd.ctl"     # ClamAV's clamd: a socket path or host:port
on_scanner_failure = "defer"  # defer: the message waits on the server | deliver: unchecked
max_size = 20971520           # larger ones are delivered unscanned, with a header saying so;
                              # at most 50 MiB (rspamd's max_message; clamd: StreamMaxLength)
timeout = 30                  # seconds for one scanner's answer
antispam = "off"              # new accounts' default: off | tag | junk
antivirus = "off"             # new accounts' default: off | quarantine

[notify]
# Notices when an account breaks (and when it works again): one per incident.
mailbox = true                # delivered into the owner's own mailbox through mailhaul's delivery
after_failures = 3            # failing runs in a row before a notice ...
after_minutes = 60            # ... or this long failing (paused, destination missing: at once)
admins = false                # admins (and the domain's admins) get every notice too
cert_days = 14                # a source server's certificate expiring sooner than this: a notice
# smtp = "smtp.example.org:587"   # send notices as e-mail through this relay instead (STARTTLS
#                                 # and AUTH as delivery.smtp_starttls / smtp_username / …)
# webhook = "https://panel.example.org/hooks/mailhaul"   # every incident event, POSTed as JSON
# webhook_secret_file = "/etc/mailhaul/webhook.key"      # HMAC-SHA256 key: X-Mailhaul-Signature
"""
