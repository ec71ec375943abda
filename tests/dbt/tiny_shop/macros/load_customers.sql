{# The shop's customer table (the project's source). Before the fix customer 3 has no name (the warning test)
   and customer 4 is missing although an order names it (the failing test). #}
{% macro load_customers() %}
create schema if not exists {{ target.schema }};
create table if not exists {{ target.schema }}.shop_customers (id integer primary key, name text);
delete from {{ target.schema }}.shop_customers;
insert into {{ target.schema }}.shop_customers (id, name) values
{%- if var('fixed', false) %}
  (1, 'Ada'), (2, 'Grace'), (3, 'Linus'), (4, 'Barbara')
{%- else %}
  (1, 'Ada'), (2, 'Grace'), (3, null)
{%- endif %};
{% endmacro %}
