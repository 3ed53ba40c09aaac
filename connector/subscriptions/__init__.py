"""Update notifications (購読): change notices for subscribed datasets, and the consumer's follower."""
