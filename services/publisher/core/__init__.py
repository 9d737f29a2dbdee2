"""The publisher's pure core: drafts and their versions, the sign-off state machine, checks, delivery decisions.

No I/O here: every function takes the policy and the current time as arguments and returns new frozen values.
"""
