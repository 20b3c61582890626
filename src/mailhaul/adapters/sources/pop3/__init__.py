"""The POP3 client (RFC 1939, 2449, 2595, 5034, 6856).

- ``source``: ``Pop3Source``, the ``MailSource``: sign-in, listing, fetching, deleting.
- ``session``: the session's I/O: replies owed, streamed bodies, secrets scrubbed from errors.
- ``parsing``: pure helpers: dot-unstuffing, status lines, listings, capabilities.
"""
