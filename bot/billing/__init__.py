"""Money: integer micro-dollars, budget periods, the ledger, limits, spend alerts and reports.

Billing code returns data (statuses, refusals as dataclasses, reports); `cogs/_render.py` words it for Discord.
"""
