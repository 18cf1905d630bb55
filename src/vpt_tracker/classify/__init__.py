"""The classifier: TF-IDF models per catalogue, keyword rules, cues and their evaluation."""

#: What the word analyzer counts as a token (scikit-learn's `token_pattern`, applied to the
#: lower-cased, accent-stripped text): a letter, then letters, digits or hyphens, so
#: "fine-tuning" is one token and "L2P" one more. Kept here, free of scikit-learn, because
#: the review app marks these same tokens in an abstract without loading a model.
WORD_TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9\-]+\b"
