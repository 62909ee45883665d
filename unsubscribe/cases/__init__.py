"""A number's case page (issue 15): everything a tenant holds about one number, on one timeline."""
