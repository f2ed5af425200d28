"""Console accounts: people who log in (admin, staff, member), their passwords, login throttling and the
audit log of what each of them did."""
