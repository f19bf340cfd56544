-- One row per encoder version and index generation that used it, from both the index writes (the models
-- that embedded what was written) and control/index_generations (the models a generation was built with).
with

writes as (

    select * from {{ ref('stg_gold__index_writes') }}
    where action = 'index' and outcome = 'applied'

),

generations as (

    select * from {{ ref('stg_control__index_generations') }}

),

written as (

    select
        text_model as model_version,
        'text' as modality,
        index_name,
        indexed_at
    from writes
    where text_model is not null

    union all

    select
        image_model as model_version,
        'image' as modality,
        index_name,
        indexed_at
    from writes
    where image_model is not null

),

write_stats as (

    select
        model_version,
        modality,
        index_name,
        count(*) as applied_index_writes,
        min(indexed_at) as first_indexed_at,
        max(indexed_at) as last_indexed_at

    from written
    group by model_version, modality, index_name

),

built_with as (

    select
        text_model as model_version,
        'text' as modality,
        index_name,
        text_dim as dim,
        state as generation_state
    from generations
    where text_model is not null

    union all

    select
        image_model as model_version,
        'image' as modality,
        index_name,
        image_dim as dim,
        state as generation_state
    from generations
    where image_model is not null

),

spine as (

    select
        model_version,
        modality,
        index_name
    from write_stats

    union

    select
        model_version,
        modality,
        index_name
    from built_with

),

final as (

    select
        spine.model_version,
        spine.modality,
        spine.index_name,
        built_with.dim,
        built_with.generation_state,
        write_stats.first_indexed_at,
        write_stats.last_indexed_at,
        coalesce(write_stats.applied_index_writes, 0) as applied_index_writes

    from spine
    left join write_stats
        on
            spine.model_version = write_stats.model_version
            and spine.modality = write_stats.modality
            and spine.index_name = write_stats.index_name
    left join built_with
        on
            spine.model_version = built_with.model_version
            and spine.modality = built_with.modality
            and spine.index_name = built_with.index_name

)

select * from final
