{{ config(materialized='table') }}
select o.customer_id, count(*) as order_count, sum(o.amount) as revenue
from {{ ref('stg_orders') }} o
group by o.customer_id
