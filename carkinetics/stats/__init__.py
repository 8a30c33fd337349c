"""Statistics on per-patient tables: intervals, Kaplan-Meier, quantiles, the outcome grammar."""
