"""Safety, moderation and privacy (issue 10).

Blocked words, members and channels, the safety dial, strikes for moderated results, what is kept
about members and how it is erased.
"""
