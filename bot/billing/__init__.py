"""Money: integer micro-dollars, budget periods, the ledger, limits, spend alerts and reports.

Billing code returns data (statuses, refusals with their text, reports); cogs render it.
"""
