"""Who and where: admin operations on the organisation, residents and devices; the CSV import; community
files; geodetic datums. Everything here writes rows that the watch core reads; nothing here decides an alarm."""
