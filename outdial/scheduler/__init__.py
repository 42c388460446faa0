"""When calls may be placed: the timing rules, and the loop that hands due jobs to Celery."""
