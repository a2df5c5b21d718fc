"""Money and time as plain values: currencies, billing periods, rating (usage ×
price → invoice lines) and Stripe's amount rules. The bottom layer of apimon: it
imports nothing of apimon's, no ORM and no Stripe, so every rule here is tested
exhaustively with plain values (docs/architecture.md)."""
