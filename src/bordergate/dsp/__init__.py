"""The US Data Security Program (28 CFR part 202) as bordergate reads it.

* :mod:`bordergate.dsp.categories`: the sensitive personal data categories a
  schema field may carry (§202.249), with the bulk threshold of each
  (§202.205), and the government-related data flag (§202.222).
* :mod:`bordergate.dsp.countries`: the countries of concern, a reviewed
  deployment setting (part of every deployment slice, promise 6).
* :mod:`bordergate.dsp.bulk`: what the bulk thresholds (§202.205) count, per
  counterparty and counter, the reviewed thresholds and actions, and which
  principals are counterparties.

Where our reading is an interpretation of the text, docs/compliance.md says so;
the excerpts relied on are committed under tests/data/regulations/.
Pure: values in, values out.  Nothing here does I/O.
"""
