-- SCD2 shape of snp_listing_states: per listing at most one open row, and each closed row ends where
-- the listing's next row begins (no gaps, no overlaps).
with

snapshot as (

    select * from {{ ref('snp_listing_states') }}

),

ordered as (

    select
        listing_id,
        dbt_valid_from,
        dbt_valid_to,
        lead(dbt_valid_from) over (partition by listing_id order by dbt_valid_from) as next_valid_from

    from snapshot

),

open_rows as (

    select listing_id
    from snapshot
    where dbt_valid_to is null
    group by listing_id
    having count(*) > 1

),

final as (

    select
        listing_id,
        'open rows' as problem
    from open_rows

    union all

    select
        listing_id,
        'gap or overlap' as problem
    from ordered
    where next_valid_from is not null and (dbt_valid_to is null or dbt_valid_to <> next_valid_from)

    union all

    select
        listing_id,
        'ends before it starts' as problem
    from ordered
    where dbt_valid_to is not null and dbt_valid_to <= dbt_valid_from

)

select * from final
