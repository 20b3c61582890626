"""Clients of the spam and virus scanners the filter stage asks: rspamd (HTTP ``/checkv2``),
SpamAssassin's spamd (the SPAMC protocol) and ClamAV's clamd (``INSTREAM``). Each reads the
spooled message in blocks and turns every failure into ``ScannerUnavailable``."""
