-- For each listing state version and each index generation it was written to: which text and image model
-- versions embedded it, which generation served it, and since when it was searchable there. A version
-- that no generation ever received (superseded before the index caught up) has one row with
-- index_outcome = 'not_written' and no generation.
with

versions as (

    select * from {{ ref('int_listing_versions__collapsed') }}

),

writes as (

    select * from {{ ref('int_index_writes__by_listing_version') }}

),

embeddings as (

    select * from {{ ref('stg_gold__embeddings') }}

),

generations as (

    select * from {{ ref('stg_control__index_generations') }}

),

audited as (

    select
        versions.listing_version_id,
        versions.listing_id,
        versions.listing_version,
        versions.event_ts,
        versions.is_live,
        versions.is_served,
        versions.policy_status,
        versions.state_hash,
        versions.states_at_version,
        versions.first_recorded_at as recorded_at,
        versions.superseded_at,
        writes.index_name,
        coalesce(
            generations.generation,
            cast({{ regex_group('writes.index_name', '_g([0-9]+)$', 1) }} as integer)
        ) as generation,
        generations.state as generation_state,
        writes.target_alias,
        coalesce(writes.written_through_read_alias, false) as written_through_read_alias,
        coalesce(writes.index_outcome, 'not_written') as index_outcome,
        writes.text_model,
        writes.image_model,
        writes.text_hash,
        writes.image_hash,
        text_embeddings.embedded_at as text_embedded_at,
        image_embeddings.embedded_at as image_embedded_at,
        writes.searchable_at,
        writes.removed_at,
        coalesce(writes.writes, 0) as index_writes,
        coalesce(writes.stale_writes, 0) as stale_writes,
        coalesce(writes.rejected_writes, 0) as rejected_writes

    from versions
    left join writes
        on
            versions.listing_id = writes.listing_id
            and versions.listing_version = writes.listing_version
    left join generations
        on writes.index_name = generations.index_name
    left join embeddings as text_embeddings
        on
            writes.listing_id = text_embeddings.listing_id
            and text_embeddings.modality = 'text'
            and writes.text_model = text_embeddings.model_version
            and writes.text_hash = text_embeddings.content_hash
    left join embeddings as image_embeddings
        on
            writes.listing_id = image_embeddings.listing_id
            and image_embeddings.modality = 'image'
            and writes.image_model = image_embeddings.model_version
            and writes.image_hash = image_embeddings.content_hash

),

final as (

    select
        {{ surrogate_key(['listing_id', 'listing_version', 'index_name']) }} as audit_id,
        *,
        {{ seconds_between('event_ts', 'searchable_at') }} as searchable_lag_s

    from audited

)

select * from final
