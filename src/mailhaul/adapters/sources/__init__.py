"""POP3 and IMAP sources."""
