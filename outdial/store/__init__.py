"""All of outdial's SQL, by subject; nothing outside this package writes a query."""
