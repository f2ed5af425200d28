"""Topic taxonomy and the topic classifier (char n-gram TF-IDF + embedding logistic regressions)."""
