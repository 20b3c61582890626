"""The IMAP client (RFC 3501, with UIDPLUS, ESEARCH, LITERAL+, SASL-IR, UTF8=ACCEPT).

- ``source``: ``ImapSource``, the ``MailSource``: selecting, listing, flags, expunge.
- ``signin``: greeting, STARTTLS, LOGIN or AUTHENTICATE, capabilities.
- ``session``: the command/response plumbing of one session (tags, pipelining, bounds).
- ``numbers``: what the session knows of message numbers (EXISTS, EXPUNGE, FETCH).
- ``listing``, ``fetching``: the UID listing of a folder; streaming bodies and headers.
- ``parser``, ``commands``: pure response parsing and command encoding.
"""
