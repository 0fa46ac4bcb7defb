-- name: ping :scalar
SELECT 1;
