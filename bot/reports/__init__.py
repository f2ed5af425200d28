"""Reports for members: 社情民意信息-shaped case reports and daily digests, with personal data redacted."""
