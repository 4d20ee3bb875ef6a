"""The pure core: decisions as functions of their inputs. Imports nothing of ours but contracts' plain types."""
