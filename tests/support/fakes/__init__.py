"""Small local servers speaking just enough of SendGrid, Stripe, Slack/Discord
and SMTP for the real client libraries to talk to them over real sockets.

Each records what it received (time, headers, body) so tests assert what the
provider would have seen, and each can be told to answer a given request —
matched by a token in its body — with a planned failure first.
"""
