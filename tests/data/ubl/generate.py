#!/usr/bin/env python3
"""Writes the UBL-size test contract beside this script: a WSDL whose
operations take and answer an invoice in the style of OASIS UBL 2 (not
UBL itself: the names follow it, the namespaces are our own), over
schemas in six namespaces, each document importing the ones below it:

    wsdl/UblInvoicing.wsdl              the service (inline schema: requests, review)
    wsdl/xsd/maindoc/Invoice-2.xsd      the Invoice document element
    wsdl/xsd/common/CommonAggregateComponents-2.xsd   cac: aggregates (Party, InvoiceLine, ...)
    wsdl/xsd/common/CommonBasicComponents-2.xsd       cbc: one type and element per basic item
    wsdl/xsd/common/CommonExtensionComponents-2.xsd   ext: UBLExtensions (xs:any content)
    wsdl/xsd/common/UnqualifiedDataTypes-2.xsd        udt: amounts with currencyID, codes, ...
    wsdl/xsd/common/CodeLists-2.xsd                   clm: code lists as enumerations

and the mapping answering DraftInvoice with structured output, in
mappings/UblInvoicing.yaml, and a request for `soapgate render`.

Deterministic: run it again and nothing changes. Run from anywhere:
python3 tests/data/ubl/generate.py
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = "urn:soapgate:test:ubl:schema:xsd"
NS = {
    "inv": f"{BASE}:Invoice-2",
    "cac": f"{BASE}:CommonAggregateComponents-2",
    "cbc": f"{BASE}:CommonBasicComponents-2",
    "ext": f"{BASE}:CommonExtensionComponents-2",
    "udt": f"{BASE}:UnqualifiedDataTypes-2",
    "clm": f"{BASE}:CodeLists-2",
}
SVC = "urn:soapgate:test:ubl:service"

# ---------------------------------------------------------------------------
# Code lists (clm): enumerations.

CURRENCIES = (
    "AUD BRL CAD CHF CLP CNY CZK DKK EUR GBP HKD HUF IDR ILS INR ISK JPY KRW MXN MYR "
    "NOK NZD PHP PLN RON SEK SGD THB TRY TWD USD ZAR"
).split()
COUNTRIES = (
    "AT AU BE BG BR CA CH CL CN CY CZ DE DK EE ES FI FR GB GR HR HU IE IL IN IS IT JP KR "
    "LT LU LV MT MX NL NO NZ PL PT RO SE SG SI SK TR US ZA"
).split()
UNITS = "C62 EA H87 HUR DAY MON KGM GRM MTR LTR MTK MTQ KWH SET PR BX".split()
INVOICE_TYPES = "380 381 383 384 386 389 751".split()
PAYMENT_MEANS = "1 10 20 30 31 42 48 49 57 58 59 68 97 ZZZ".split()
TAX_CATEGORIES = "AE E S Z G O K L M B".split()
MIME_CODES = (
    "application/pdf image/png image/jpeg text/csv application/xml "
    "application/vnd.oasis.opendocument.spreadsheet"
).split()
CHARGE_REASONS = "AA ABL ADR FC TV ZZZ".split()

CODE_LISTS = {
    "CurrencyCodeContentType": CURRENCIES,
    "CountryIdentificationCodeContentType": COUNTRIES,
    "UnitOfMeasureCodeContentType": UNITS,
    "InvoiceTypeCodeContentType": INVOICE_TYPES,
    "PaymentMeansCodeContentType": PAYMENT_MEANS,
    "TaxCategoryCodeContentType": TAX_CATEGORIES,
    "MimeCodeContentType": MIME_CODES,
    "AllowanceChargeReasonCodeContentType": CHARGE_REASONS,
}

# ---------------------------------------------------------------------------
# Unqualified data types (udt): simple content with supplementary attributes.
# name -> (base, [(attribute, type, use)])

UDT = {
    "AmountType": ("xsd:decimal", [("currencyID", "clm:CurrencyCodeContentType", "required"),
                                   ("currencyCodeListVersionID", "xsd:normalizedString", "optional")]),
    "BinaryObjectType": ("xsd:base64Binary", [("mimeCode", "clm:MimeCodeContentType", "required"),
                                              ("filename", "xsd:string", "optional"),
                                              ("encodingCode", "xsd:normalizedString", "optional")]),
    "CodeType": ("xsd:normalizedString", [("listID", "xsd:normalizedString", "optional"),
                                          ("listAgencyID", "xsd:normalizedString", "optional"),
                                          ("listVersionID", "xsd:normalizedString", "optional")]),
    "CurrencyCodeType": ("clm:CurrencyCodeContentType", [("listID", "xsd:normalizedString", "optional")]),
    "CountryCodeType": ("clm:CountryIdentificationCodeContentType", [("listID", "xsd:normalizedString", "optional")]),
    "DateTimeType": ("xsd:dateTime", []),
    "DateType": ("xsd:date", []),
    "DurationType": ("xsd:duration", []),
    "IdentifierType": ("xsd:normalizedString", [("schemeID", "xsd:normalizedString", "optional"),
                                                ("schemeAgencyID", "xsd:normalizedString", "optional")]),
    "IndicatorType": ("xsd:boolean", []),
    "MeasureType": ("xsd:decimal", [("unitCode", "clm:UnitOfMeasureCodeContentType", "required")]),
    "NameType": ("xsd:string", [("languageID", "xsd:language", "optional")]),
    "NumericType": ("xsd:decimal", [("format", "xsd:string", "optional")]),
    "PercentType": ("xsd:decimal", [("format", "xsd:string", "optional")]),
    "QuantityType": ("xsd:decimal", [("unitCode", "clm:UnitOfMeasureCodeContentType", "optional")]),
    "RateType": ("xsd:decimal", [("format", "xsd:string", "optional")]),
    "TextType": ("xsd:string", [("languageID", "xsd:language", "optional")]),
    "TimeType": ("xsd:time", []),
}

# ---------------------------------------------------------------------------
# Basic components (cbc): element name -> udt type (one complexType each,
# `{name}Type`, extending it). Suffixes decide the type, as in UBL.

BASIC = """
AccountingCost AccountingCostCode AccountID ActualDeliveryDate ActualDeliveryTime
AdditionalAccountID AdditionalStreetName AddressFormatCode AddressTypeCode AgencyID
AllowanceChargeReason AllowanceChargeReasonCode AllowanceTotalAmount Amount
AttributeID BaseAmount BaseQuantity BaseUnitMeasure BatchQuantity BlockName
BrandName BuildingName BuildingNumber BuyerReference CalculationRate
CatalogueIndicator ChargeIndicator ChargeTotalAmount CityName CitySubdivisionName
CompanyID CompanyLegalForm CompanyLegalFormCode CompanyLiquidationStatusCode
ContractSubdivision ContractType ContractTypeCode CopyIndicator CorporateStockAmount
CountrySubentity CountrySubentityCode CustomerAssignedAccountID CustomizationID
DebitLineAmount DeclaredCarriageValueAmount DeliveredQuantity Department
Description DescriptionCode District DocumentCurrencyCode DocumentDescription
DocumentStatusCode DocumentType DocumentTypeCode DueDate DurationMeasure
ElectronicMail EmbeddedDocumentBinaryObject EndDate EndTime EndpointID ExemptionReason
ExemptionReasonCode ExpiryDate ExtensionAgencyID ExtensionAgencyName ExtensionAgencyURI
ExtensionReason ExtensionReasonCode ExtensionURI ExtensionVersionID FileName Floor
FreeOfChargeIndicator FullnessIndicationCode HazardousRiskIndicator ID IdentificationCode
InhouseMail InstructionID InstructionNote InvoiceTypeCode InvoicedQuantity
IssueDate IssueTime IssuerID ItemClassificationCode JobTitle Keyword Latitude
LineCountNumeric LineExtensionAmount LineID LineStatusCode ListValueID Longitude
LowerOrangeHazardPlacardID ManufacturersItemIdentification MarkAttention MarkCare
MathematicOperatorCode MaximumQuantity MinimumQuantity MimeCode Multiplier
MultiplierFactorNumeric Name NameCode NetworkID Note OrderableUnit OrderableUnitFactorRate
OriginalJobID PackQuantity PackSizeNumeric PaidAmount PaidDate PaidTime
ParentDocumentID PayableAlternativeAmount PayableAmount PayableRoundingAmount
PayerReference PaymentChannelCode PaymentDueDate PaymentID PaymentMeansCode
PaymentMeansID PaymentNote PaymentPercent PaymentTermsDetailsURI PenaltyAmount
PenaltySurchargePercent Percent PerUnitAmount Postbox PostalZone PrepaidAmount
PriceAmount PriceChangeReason PriceType PriceTypeCode PrimaryAccountNumberID
ProfileExecutionID ProfileID Quantity Reason ReferenceEventCode Region
RegistrationDate RegistrationExpirationDate RegistrationName ReminderSequenceNumeric
Room RoundingAmount SalesOrderID SalesOrderLineID SequenceNumeric SettlementDiscountAmount
SettlementDiscountPercent SignatureMethod StartDate StartTime StreetName
TaxAmount TaxCurrencyCode TaxExclusiveAmount TaxExemptionReason TaxExemptionReasonCode
TaxInclusiveAmount TaxLevelCode TaxPointDate TaxTypeCode TaxableAmount Telefax
Telephone Timezone TierRange TierRatePercent Title TotalTaxAmount TransactionCurrencyTaxAmount
UBLVersionID UUID UnitCode Value ValueAmount ValueMeasure ValueQualifier VersionID
Weight WebsiteURI XPath
""".split()

# Element names whose type is not decided by the suffix rules below.
BASIC_TYPES = {
    "CopyIndicator": "IndicatorType",
    "ChargeIndicator": "IndicatorType",
    "CatalogueIndicator": "IndicatorType",
    "FreeOfChargeIndicator": "IndicatorType",
    "HazardousRiskIndicator": "IndicatorType",
    "DocumentCurrencyCode": "CurrencyCodeType",
    "TaxCurrencyCode": "CurrencyCodeType",
    "IdentificationCode": "CountryCodeType",
    "EmbeddedDocumentBinaryObject": "BinaryObjectType",
    "Latitude": "NumericType",
    "Longitude": "NumericType",
    "CalculationRate": "RateType",
    "OrderableUnitFactorRate": "RateType",
    "Multiplier": "NumericType",
    "Weight": "MeasureType",
    "Value": "TextType",
}


def basic_type(name):
    if name in BASIC_TYPES:
        return BASIC_TYPES[name]
    for suffix, udt in (
        ("Amount", "AmountType"),
        ("Quantity", "QuantityType"),
        ("Measure", "MeasureType"),
        ("Numeric", "NumericType"),
        ("Percent", "PercentType"),
        ("Date", "DateType"),
        ("Time", "TimeType"),
        ("Code", "CodeType"),
        ("ID", "IdentifierType"),
        ("URI", "IdentifierType"),
        ("Indicator", "IndicatorType"),
        ("Name", "NameType"),
    ):
        if name.endswith(suffix):
            return udt
    return "TextType"


# Basic types that restrict their data type instead of extending it: the
# code lists UBL leaves to genericode, here as enumerations (simple content
# restrictions), and identifiers with a pattern.
RESTRICTED = {
    "InvoiceTypeCode": ("CodeType", [("enumeration", v) for v in INVOICE_TYPES]),
    "PaymentMeansCode": ("CodeType", [("enumeration", v) for v in PAYMENT_MEANS]),
    "AllowanceChargeReasonCode": ("CodeType", [("enumeration", v) for v in CHARGE_REASONS]),
    "UUID": ("IdentifierType", [("pattern", "[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")]),
    "UBLVersionID": ("IdentifierType", [("pattern", r"2\.[0-9]")]),
    "Percent": ("PercentType", [("minInclusive", "0"), ("maxInclusive", "100")]),
    "Timezone": ("TextType", [("pattern", r"[+\-](0\d|1[0-4]):[0-5]\d")]),
    "PostalZone": ("TextType", [("minLength", "2"), ("maxLength", "10")]),
}

# ---------------------------------------------------------------------------
# Aggregates (cac): type name (without `Type`) -> children, each
# "prefix:Element[type]" with an occurrence: "" once, "?" optional,
# "*" any number, "+" one or more. An element named like a type carries
# it; `Element=Type` names another (AgentParty=Party).

AGGREGATES = {
    "Address": "cbc:ID? cbc:AddressTypeCode? cbc:AddressFormatCode? cbc:Postbox? cbc:Floor? cbc:Room? "
    "cbc:StreetName? cbc:AdditionalStreetName? cbc:BlockName? cbc:BuildingName? cbc:BuildingNumber? "
    "cbc:InhouseMail? cbc:Department? cbc:MarkAttention? cbc:MarkCare? cbc:CityName? cbc:PostalZone? "
    "cbc:CountrySubentity? cbc:CountrySubentityCode? cbc:Region? cbc:District? cbc:Timezone? "
    "cac:AddressLine* cac:Country? cac:LocationCoordinate*",
    "AddressLine": "cbc:Line",
    "AllowanceCharge": "cbc:ID? cbc:ChargeIndicator cbc:AllowanceChargeReasonCode? cbc:AllowanceChargeReason* "
    "cbc:MultiplierFactorNumeric? cbc:SequenceNumeric? cbc:Amount cbc:BaseAmount? cbc:AccountingCostCode? "
    "cbc:AccountingCost? cbc:PerUnitAmount? cac:TaxCategory* cac:TaxTotal? cac:PaymentMeans*",
    "Attachment": "cbc:EmbeddedDocumentBinaryObject? cac:ExternalReference?",
    "BillingReference": "cac:InvoiceDocumentReference? cac:CreditNoteDocumentReference? "
    "cac:AdditionalDocumentReference? cac:BillingReferenceLine*",
    "BillingReferenceLine": "cbc:ID cbc:Amount? cac:AllowanceCharge*",
    "Branch": "cbc:ID? cbc:Name? cac:FinancialInstitution? cac:Address?",
    "CardAccount": "cbc:PrimaryAccountNumberID cbc:NetworkID cbc:ExpiryDate? cbc:IssuerID? cbc:HolderName?",
    "ClassifiedTaxCategory=TaxCategory": None,
    "CommodityClassification": "cbc:NatureCode? cbc:CargoTypeCode? cbc:CommodityCode? cbc:ItemClassificationCode?",
    "Contact": "cbc:ID? cbc:Name? cbc:Telephone? cbc:Telefax? cbc:ElectronicMail? cbc:Note* cac:OtherCommunication*",
    "Contract": "cbc:ID? cbc:IssueDate? cbc:IssueTime? cbc:ContractTypeCode? cbc:ContractType? cbc:Note* "
    "cbc:VersionID? cbc:Description* cac:ValidityPeriod? cac:ContractDocumentReference* cac:ContractualDelivery?",
    "CorporateRegistrationScheme": "cbc:ID? cbc:Name? cbc:CorporateRegistrationTypeCode? cac:JurisdictionRegionAddress*",
    "Country": "cbc:IdentificationCode? cbc:Name?",
    "CustomerParty": "cbc:CustomerAssignedAccountID? cbc:SupplierAssignedAccountID? cbc:AdditionalAccountID* "
    "cac:Party? cac:DeliveryContact? cac:AccountingContact? cac:BuyerContact?",
    "Delivery": "cbc:ID? cbc:Quantity? cbc:MinimumQuantity? cbc:MaximumQuantity? cbc:ActualDeliveryDate? "
    "cbc:ActualDeliveryTime? cbc:LatestDeliveryDate? cbc:TrackingID? cac:DeliveryAddress? cac:DeliveryLocation? "
    "cac:RequestedDeliveryPeriod? cac:PromisedDeliveryPeriod? cac:DeliveryParty? cac:Despatch?",
    "Despatch": "cbc:ID? cbc:RequestedDespatchDate? cbc:ActualDespatchDate? cbc:Instructions* "
    "cac:DespatchAddress? cac:DespatchParty? cac:Contact?",
    "Dimension": "cbc:AttributeID cbc:Measure? cbc:Description* cbc:MinimumMeasure? cbc:MaximumMeasure?",
    "DocumentReference": "cbc:ID cbc:CopyIndicator? cbc:UUID? cbc:IssueDate? cbc:IssueTime? cbc:DocumentTypeCode? "
    "cbc:DocumentType? cbc:XPath* cbc:LanguageID? cbc:LocaleCode? cbc:VersionID? cbc:DocumentStatusCode? "
    "cbc:DocumentDescription* cac:Attachment? cac:ValidityPeriod? cac:IssuerParty? cac:ResultOfVerification?",
    "ExchangeRate": "cbc:SourceCurrencyCode cbc:SourceCurrencyBaseRate? cbc:TargetCurrencyCode "
    "cbc:TargetCurrencyBaseRate? cbc:ExchangeMarketID? cbc:CalculationRate? cbc:MathematicOperatorCode? cbc:Date?",
    "ExternalReference": "cbc:URI? cbc:DocumentHash? cbc:HashAlgorithmMethod? cbc:ExpiryDate? cbc:ExpiryTime? "
    "cbc:MimeCode? cbc:FormatCode? cbc:EncodingCode? cbc:CharacterSetCode? cbc:FileName? cbc:Description*",
    "FinancialAccount": "cbc:ID? cbc:Name? cbc:AliasName? cbc:AccountTypeCode? cbc:AccountFormatCode? "
    "cbc:CurrencyCode? cbc:PaymentNote* cac:FinancialInstitutionBranch? cac:Country?",
    "FinancialInstitution": "cbc:ID? cbc:Name? cac:Address?",
    "InvoiceLine": "cbc:ID cbc:UUID? cbc:Note* cbc:InvoicedQuantity? cbc:LineExtensionAmount cbc:TaxPointDate? "
    "cbc:AccountingCostCode? cbc:AccountingCost? cbc:PaymentPurposeCode? cbc:FreeOfChargeIndicator? "
    "cac:InvoicePeriod* cac:OrderLineReference* cac:DespatchLineReference* cac:DocumentReference* "
    "cac:PricingReference? cac:OriginatorParty? cac:Delivery* cac:PaymentTerms* cac:AllowanceCharge* "
    "cac:TaxTotal* cac:WithholdingTaxTotal* cac:Item cac:Price? cac:DeliveryTerms? cac:SubInvoiceLine* "
    "cac:ItemPriceExtension?",
    "Item": "cbc:Description* cbc:PackQuantity? cbc:PackSizeNumeric? cbc:CatalogueIndicator? cbc:Name? "
    "cbc:HazardousRiskIndicator? cbc:AdditionalInformation* cbc:Keyword* cbc:BrandName* cbc:ModelName* "
    "cac:BuyersItemIdentification? cac:SellersItemIdentification? cac:ManufacturersItemIdentification* "
    "cac:StandardItemIdentification? cac:CatalogueItemIdentification? cac:AdditionalItemIdentification* "
    "cac:OriginCountry? cac:CommodityClassification* cac:ClassifiedTaxCategory* cac:AdditionalItemProperty* "
    "cac:ManufacturerParty* cac:Dimension* cac:ItemInstance*",
    "ItemIdentification": "cbc:ID cbc:ExtendedID? cbc:BarcodeSymbologyID? cac:PhysicalAttribute* "
    "cac:MeasurementDimension* cac:IssuerParty?",
    "ItemInstance": "cbc:ProductTraceID? cbc:ManufactureDate? cbc:ManufactureTime? cbc:BestBeforeDate? "
    "cbc:RegistrationID? cbc:SerialID? cac:AdditionalItemProperty* cac:LotIdentification?",
    "ItemProperty": "cbc:ID? cbc:Name cbc:NameCode? cbc:TestMethod? cbc:Value? cbc:ValueQuantity? "
    "cbc:ValueQualifier* cbc:ImportanceCode? cbc:ListValue* cac:UsabilityPeriod? cac:ItemPropertyGroup* "
    "cac:RangeDimension? cac:ItemPropertyRange?",
    "ItemPropertyGroup": "cbc:ID cbc:Name? cbc:ImportanceCode?",
    "ItemPropertyRange": "cbc:MinimumValue? cbc:MaximumValue?",
    "LineReference": "cbc:LineID cbc:UUID? cbc:LineStatusCode? cac:DocumentReference?",
    "Location": "cbc:ID? cbc:Description* cbc:Conditions* cbc:CountrySubentity? cbc:CountrySubentityCode? "
    "cbc:LocationTypeCode? cbc:InformationURI? cbc:Name? cac:ValidityPeriod* cac:Address? "
    "cac:SubsidiaryLocation* cac:LocationCoordinate*",
    "LocationCoordinate": "cbc:CoordinateSystemCode? cbc:LatitudeDegreesMeasure? cbc:LatitudeMinutesMeasure? "
    "cbc:LatitudeDirectionCode? cbc:LongitudeDegreesMeasure? cbc:LongitudeMinutesMeasure? cbc:LongitudeDirectionCode? "
    "cbc:AltitudeMeasure?",
    "LotIdentification": "cbc:LotNumberID? cbc:ExpiryDate? cac:AdditionalItemProperty*",
    "MonetaryTotal": "cbc:LineExtensionAmount? cbc:TaxExclusiveAmount? cbc:TaxInclusiveAmount? "
    "cbc:AllowanceTotalAmount? cbc:ChargeTotalAmount? cbc:WithholdingTaxTotalAmount? cbc:PrepaidAmount? "
    "cbc:PayableRoundingAmount? cbc:PayableAmount cbc:PayableAlternativeAmount?",
    "OrderLineReference": "cbc:LineID cbc:SalesOrderLineID? cbc:UUID? cbc:LineStatusCode? cac:OrderReference?",
    "OrderReference": "cbc:ID cbc:SalesOrderID? cbc:CopyIndicator? cbc:UUID? cbc:IssueDate? cbc:IssueTime? "
    "cbc:CustomerReference? cbc:OrderTypeCode? cac:DocumentReference?",
    "Party": "cbc:MarkCareIndicator? cbc:MarkAttentionIndicator? cbc:WebsiteURI? cbc:LogoReferenceID? "
    "cbc:EndpointID? cbc:IndustryClassificationCode? cac:PartyIdentification* cac:PartyName* cac:Language? "
    "cac:PostalAddress? cac:PhysicalLocation? cac:PartyTaxScheme* cac:PartyLegalEntity* cac:Contact? "
    "cac:Person* cac:AgentParty? cac:ServiceProviderParty* cac:PowerOfAttorney* cac:FinancialAccount?",
    "PartyIdentification": "cbc:ID",
    "PartyLegalEntity": "cbc:RegistrationName? cbc:CompanyID? cbc:RegistrationDate? cbc:RegistrationExpirationDate? "
    "cbc:CompanyLegalFormCode? cbc:CompanyLegalForm? cbc:SoleProprietorshipIndicator? "
    "cbc:CompanyLiquidationStatusCode? cbc:CorporateStockAmount? cbc:FullyPaidSharesIndicator? "
    "cac:RegistrationAddress? cac:CorporateRegistrationScheme? cac:HeadOfficeParty? cac:ShareholderParty*",
    "PartyName": "cbc:Name",
    "PartyTaxScheme": "cbc:RegistrationName? cbc:CompanyID? cbc:TaxLevelCode? cbc:ExemptionReasonCode? "
    "cbc:ExemptionReason* cac:RegistrationAddress? cac:TaxScheme",
    "Language": "cbc:ID? cbc:Name? cbc:LocaleCode?",
    "OtherCommunication": "cbc:ChannelCode? cbc:Channel? cbc:Value",
    "Payment": "cbc:ID? cbc:PaidAmount? cbc:ReceivedDate? cbc:PaidDate? cbc:PaidTime? cbc:InstructionID?",
    "PaymentMandate": "cbc:ID? cbc:MandateTypeCode? cbc:MaximumPaymentInstructionsNumeric? "
    "cbc:MaximumPaidAmount? cbc:SignatureID? cac:PayerParty? cac:PayerFinancialAccount? cac:ValidityPeriod? "
    "cac:PaymentReversalPeriod? cac:Clause*",
    "Clause": "cbc:ID? cbc:Content*",
    "PaymentMeans": "cbc:ID? cbc:PaymentMeansCode cbc:PaymentDueDate? cbc:PaymentChannelCode? cbc:InstructionID? "
    "cbc:InstructionNote* cbc:PaymentID* cac:CardAccount? cac:PayerFinancialAccount? cac:PayeeFinancialAccount? "
    "cac:CreditAccount? cac:PaymentMandate? cac:TradeFinancing?",
    "CreditAccount": "cbc:AccountID",
    "TradeFinancing": "cbc:ID? cbc:FinancingInstrumentCode? cac:ContractDocumentReference? cac:DocumentReference* "
    "cac:FinancingParty cac:FinancingFinancialAccount? cac:Clause*",
    "PaymentTerms": "cbc:ID? cbc:PaymentMeansID* cbc:PrepaidPaymentReferenceID? cbc:Note* cbc:ReferenceEventCode? "
    "cbc:SettlementDiscountPercent? cbc:PenaltySurchargePercent? cbc:PaymentPercent? cbc:Amount? "
    "cbc:SettlementDiscountAmount? cbc:PenaltyAmount? cbc:PaymentTermsDetailsURI? cbc:PaymentDueDate? "
    "cbc:InstallmentDueDate? cbc:InvoicingPartyReference? cac:SettlementPeriod? cac:PenaltyPeriod? "
    "cac:ExchangeRate? cac:ValidityPeriod?",
    "Period": "cbc:StartDate? cbc:StartTime? cbc:EndDate? cbc:EndTime? cbc:DurationMeasure? "
    "cbc:DescriptionCode* cbc:Description*",
    "Person": "cbc:ID? cbc:FirstName? cbc:FamilyName? cbc:Title? cbc:MiddleName? cbc:OtherName? "
    "cbc:NameSuffix? cbc:JobTitle? cbc:NationalityID? cbc:GenderCode? cbc:BirthDate? cbc:BirthplaceName? "
    "cbc:OrganizationDepartment? cac:Contact? cac:FinancialAccount? cac:IdentityDocumentReference* cac:ResidenceAddress?",
    "PowerOfAttorney": "cbc:ID? cbc:IssueDate? cbc:IssueTime? cbc:Description* cac:NotaryParty? "
    "cac:AgentParty cac:WitnessParty* cac:MandateDocumentReference*",
    "Price": "cbc:PriceAmount cbc:BaseQuantity? cbc:PriceChangeReason* cbc:PriceTypeCode? cbc:PriceType? "
    "cbc:OrderableUnitFactorRate? cac:ValidityPeriod* cac:PriceList? cac:AllowanceCharge* cac:PricingExchangeRate?",
    "PriceList": "cbc:ID? cbc:StatusCode? cac:ValidityPeriod* cac:PreviousPriceList?",
    "PricingReference": "cac:OriginalItemLocationQuantity? cac:AlternativeConditionPrice*",
    "ItemLocationQuantity": "cbc:LeadTimeMeasure? cbc:MinimumQuantity? cbc:MaximumQuantity? "
    "cbc:HazardousRiskIndicator? cbc:TradingRestrictions* cac:ApplicableTerritoryAddress* cac:Price? "
    "cac:DeliveryUnit* cac:ApplicableTaxCategory* cac:Package? cac:AllowanceCharge* cac:DependentPriceReference?",
    "DeliveryUnit": "cbc:BatchQuantity cbc:ConsumerUnitQuantity? cbc:HazardousRiskIndicator?",
    "DependentPriceReference": "cbc:Percent? cac:LocationAddress? cac:DependentLineReference?",
    "Package": "cbc:ID? cbc:Quantity? cbc:ReturnableMaterialIndicator? cbc:PackageLevelCode? "
    "cbc:PackagingTypeCode? cbc:PackingMaterial* cac:ContainedPackage* cac:MeasurementDimension*",
    "ResultOfVerification": "cbc:ValidatorID? cbc:ValidationResultCode? cbc:ValidationDate? cbc:ValidationTime? "
    "cbc:ValidateProcess? cbc:ValidateTool? cbc:ValidateToolVersion? cac:SignatoryParty?",
    "Signature": "cbc:ID cbc:Note* cbc:ValidationDate? cbc:ValidationTime? cbc:ValidatorID? "
    "cbc:CanonicalizationMethod? cbc:SignatureMethod? cac:SignatoryParty? cac:DigitalSignatureAttachment? "
    "cac:OriginalDocumentReference?",
    "SupplierParty": "cbc:CustomerAssignedAccountID? cbc:AdditionalAccountID* cbc:DataSendingCapability? "
    "cac:Party? cac:DespatchContact? cac:AccountingContact? cac:SellerContact?",
    "TaxCategory": "cbc:ID? cbc:Name? cbc:Percent? cbc:BaseUnitMeasure? cbc:PerUnitAmount? "
    "cbc:TaxExemptionReasonCode? cbc:TaxExemptionReason* cbc:TierRange? cbc:TierRatePercent? cac:TaxScheme",
    "TaxScheme": "cbc:ID? cbc:Name? cbc:TaxTypeCode? cbc:CurrencyCode? cac:JurisdictionRegionAddress*",
    "TaxSubtotal": "cbc:TaxableAmount? cbc:TaxAmount cbc:CalculationSequenceNumeric? "
    "cbc:TransactionCurrencyTaxAmount? cbc:Percent? cbc:BaseUnitMeasure? cbc:PerUnitAmount? "
    "cbc:TierRange? cbc:TierRatePercent? cac:TaxCategory",
    "TaxTotal": "cbc:TaxAmount cbc:RoundingAmount? cbc:TaxEvidenceIndicator? cbc:TaxIncludedIndicator? cac:TaxSubtotal*",
    "DeliveryTerms": "cbc:ID? cbc:SpecialTerms* cbc:LossRiskResponsibilityCode? cbc:LossRisk* cbc:Amount? "
    "cac:DeliveryLocation? cac:AllowanceCharge?",
}

# Elements of cac whose type is another aggregate's.
ROLE_TYPES = {
    "AccountingCustomerParty": "CustomerParty",
    "AccountingSupplierParty": "SupplierParty",
    "AccountingContact": "Contact",
    "AdditionalDocumentReference": "DocumentReference",
    "AdditionalItemIdentification": "ItemIdentification",
    "AdditionalItemProperty": "ItemProperty",
    "AgentParty": "Party",
    "AlternativeConditionPrice": "Price",
    "ApplicableTaxCategory": "TaxCategory",
    "ApplicableTerritoryAddress": "Address",
    "BuyerContact": "Contact",
    "BuyerCustomerParty": "CustomerParty",
    "BuyersItemIdentification": "ItemIdentification",
    "CatalogueItemIdentification": "ItemIdentification",
    "ClassifiedTaxCategory": "TaxCategory",
    "ContainedPackage": "Package",
    "ContractDocumentReference": "DocumentReference",
    "ContractualDelivery": "Delivery",
    "CreditNoteDocumentReference": "DocumentReference",
    "DeliveryAddress": "Address",
    "DeliveryContact": "Contact",
    "DeliveryLocation": "Location",
    "DeliveryParty": "Party",
    "DependentLineReference": "LineReference",
    "DespatchAddress": "Address",
    "DespatchContact": "Contact",
    "DespatchDocumentReference": "DocumentReference",
    "DespatchLineReference": "LineReference",
    "DespatchParty": "Party",
    "DigitalSignatureAttachment": "Attachment",
    "FinancialInstitutionBranch": "Branch",
    "FinancingFinancialAccount": "FinancialAccount",
    "FinancingParty": "Party",
    "HeadOfficeParty": "Party",
    "IdentityDocumentReference": "DocumentReference",
    "InvoiceDocumentReference": "DocumentReference",
    "InvoicePeriod": "Period",
    "IssuerParty": "Party",
    "ItemPriceExtension": "PriceExtension",
    "JurisdictionRegionAddress": "Address",
    "LegalMonetaryTotal": "MonetaryTotal",
    "LocationAddress": "Address",
    "MandateDocumentReference": "DocumentReference",
    "ManufacturerParty": "Party",
    "ManufacturersItemIdentification": "ItemIdentification",
    "MeasurementDimension": "Dimension",
    "NotaryParty": "Party",
    "OriginCountry": "Country",
    "OriginalDocumentReference": "DocumentReference",
    "OriginalItemLocationQuantity": "ItemLocationQuantity",
    "OriginatorParty": "Party",
    "PayeeFinancialAccount": "FinancialAccount",
    "PayeeParty": "Party",
    "PayerFinancialAccount": "FinancialAccount",
    "PayerParty": "Party",
    "PaymentReversalPeriod": "Period",
    "PenaltyPeriod": "Period",
    "PhysicalAttribute": "PhysicalAttribute",
    "PhysicalLocation": "Location",
    "PostalAddress": "Address",
    "PreviousPriceList": "PriceList",
    "PricingExchangeRate": "ExchangeRate",
    "PromisedDeliveryPeriod": "Period",
    "RangeDimension": "Dimension",
    "RegistrationAddress": "Address",
    "RequestedDeliveryPeriod": "Period",
    "ResidenceAddress": "Address",
    "SellerContact": "Contact",
    "SellersItemIdentification": "ItemIdentification",
    "ServiceProviderParty": "ServiceProviderParty",
    "SettlementPeriod": "Period",
    "ShareholderParty": "ShareholderParty",
    "SignatoryParty": "Party",
    "StandardItemIdentification": "ItemIdentification",
    "SubInvoiceLine": "InvoiceLine",
    "SubsidiaryLocation": "Location",
    "TaxExchangeRate": "ExchangeRate",
    "UsabilityPeriod": "Period",
    "ValidityPeriod": "Period",
    "WithholdingTaxTotal": "TaxTotal",
    "WitnessParty": "Party",
}

EXTRA_AGGREGATES = {
    "PriceExtension": "cbc:Amount cac:TaxTotal*",
    "PhysicalAttribute": "cbc:AttributeID cbc:PositionCode? cbc:DescriptionCode? cbc:Description*",
    "ServiceProviderParty": "cbc:ID? cbc:ServiceTypeCode? cbc:ServiceType* cac:Party",
    "ShareholderParty": "cbc:PartecipationPercent? cac:Party?",
}
AGGREGATES.update(EXTRA_AGGREGATES)
del AGGREGATES["ClassifiedTaxCategory=TaxCategory"]

# The Invoice document, in order.
INVOICE = (
    "ext:UBLExtensions? cbc:UBLVersionID? cbc:CustomizationID? cbc:ProfileID? cbc:ProfileExecutionID? "
    "cbc:ID cbc:CopyIndicator? cbc:UUID? cbc:IssueDate cbc:IssueTime? cbc:DueDate? cbc:InvoiceTypeCode? "
    "cbc:Note* cbc:TaxPointDate? cbc:DocumentCurrencyCode? cbc:TaxCurrencyCode? cbc:AccountingCost? "
    "cbc:BuyerReference? cbc:LineCountNumeric? cac:InvoicePeriod* cac:OrderReference? cac:BillingReference* "
    "cac:DespatchDocumentReference* cac:ContractDocumentReference* cac:AdditionalDocumentReference* "
    "cac:Signature* cac:AccountingSupplierParty cac:AccountingCustomerParty cac:PayeeParty? "
    "cac:Delivery* cac:PaymentMeans* cac:PaymentTerms* cac:AllowanceCharge* cac:TaxExchangeRate? "
    "cac:TaxTotal* cac:LegalMonetaryTotal cac:InvoiceLine+"
)

# ---------------------------------------------------------------------------
# Writing.


def occurs(token):
    name, mark = (token[:-1], token[-1]) if token[-1] in "?*+" else (token, "")
    lo, hi = {"": ("1", "1"), "?": ("0", "1"), "*": ("0", "unbounded"), "+": ("1", "unbounded")}[mark]
    return name, lo, hi


def particle(token):
    name, lo, hi = occurs(token)
    attrs = ""
    if lo != "1":
        attrs += f' minOccurs="{lo}"'
    if hi != "1":
        attrs += f' maxOccurs="{hi}"'
    return f'<xsd:element ref="{name}"{attrs}/>'


def header(tns, imports):
    decls = "".join(f'\n    xmlns:{p}="{NS[p]}"' for p in [tns, *imports])
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Generated by tests/data/ubl/generate.py: edit that, not this. -->",
        f'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"{decls}',
        f'    xmlns="{NS[tns]}" targetNamespace="{NS[tns]}"',
        '    elementFormDefault="qualified" attributeFormDefault="unqualified" version="2.1">',
    ]
    for p, f in imports.items():
        lines.append(f'  <xsd:import namespace="{NS[p]}" schemaLocation="{f}"/>')
    return lines


def code_lists():
    out = header("clm", {})
    for name, values in CODE_LISTS.items():
        out.append(f'  <xsd:simpleType name="{name}">')
        out.append('    <xsd:restriction base="xsd:normalizedString">')
        out += [f'      <xsd:enumeration value="{v}"/>' for v in values]
        out.append("    </xsd:restriction>")
        out.append("  </xsd:simpleType>")
    out.append("</xsd:schema>")
    return out


def udt():
    out = header("udt", {"clm": "CodeLists-2.xsd"})
    for name, (base, attrs) in UDT.items():
        out.append(f'  <xsd:complexType name="{name}">')
        out.append(f'    <xsd:simpleContent><xsd:extension base="{base}">')
        for a, t, use in attrs:
            out.append(f'      <xsd:attribute name="{a}" type="{t}" use="{use}"/>')
        out.append("    </xsd:extension></xsd:simpleContent>")
        out.append("  </xsd:complexType>")
    out.append("</xsd:schema>")
    return out


def basic_names():
    """Every cbc element: the list above and those the aggregates use."""
    names = set(BASIC)
    for spec in [*AGGREGATES.values(), INVOICE]:
        for token in spec.split():
            name, _, _ = occurs(token)
            prefix, local = name.split(":")
            if prefix == "cbc":
                names.add(local)
    return sorted(names)


def cbc():
    out = header("cbc", {"udt": "UnqualifiedDataTypes-2.xsd"})
    for name in basic_names():
        out.append(f'  <xsd:element name="{name}" type="{name}Type"/>')
    for name in basic_names():
        out.append(f'  <xsd:complexType name="{name}Type">')
        if name in RESTRICTED:
            base, facets = RESTRICTED[name]
            out.append(f'    <xsd:simpleContent><xsd:restriction base="udt:{base}">')
            for f, v in facets:
                out.append(f'      <xsd:{f} value="{v}"/>')
            out.append("    </xsd:restriction></xsd:simpleContent>")
        else:
            out.append(f'    <xsd:simpleContent><xsd:extension base="udt:{basic_type(name)}"/></xsd:simpleContent>')
        out.append("  </xsd:complexType>")
    out.append("</xsd:schema>")
    return out


def aggregate_elements():
    """Every cac element name -> its type (without `Type`)."""
    names = {}
    for spec in [*AGGREGATES.values(), INVOICE]:
        for token in spec.split():
            name, _, _ = occurs(token)
            prefix, local = name.split(":")
            if prefix == "cac":
                names[local] = ROLE_TYPES.get(local, local)
    return dict(sorted(names.items()))


def cac():
    out = header("cac", {"cbc": "CommonBasicComponents-2.xsd"})
    elements = aggregate_elements()
    missing = sorted(set(elements.values()) - set(AGGREGATES))
    if missing:
        raise SystemExit(f"aggregates without a definition: {missing}")
    for name, ty in elements.items():
        out.append(f'  <xsd:element name="{name}" type="{ty}Type"/>')
    for name in sorted(AGGREGATES):
        out.append(f'  <xsd:complexType name="{name}Type">')
        out.append("    <xsd:sequence>")
        out += [f"      {particle(t)}" for t in AGGREGATES[name].split()]
        out.append("    </xsd:sequence>")
        out.append("  </xsd:complexType>")
    out.append("</xsd:schema>")
    return out


def ext():
    out = header("ext", {"cbc": "CommonBasicComponents-2.xsd"})
    out += [
        '  <xsd:element name="UBLExtensions" type="UBLExtensionsType"/>',
        '  <xsd:element name="UBLExtension" type="UBLExtensionType"/>',
        '  <xsd:element name="ExtensionContent" type="ExtensionContentType"/>',
        '  <xsd:complexType name="UBLExtensionsType">',
        '    <xsd:sequence><xsd:element ref="UBLExtension" maxOccurs="unbounded"/></xsd:sequence>',
        "  </xsd:complexType>",
        '  <xsd:complexType name="UBLExtensionType">',
        "    <xsd:sequence>",
        '      <xsd:element ref="cbc:ID" minOccurs="0"/>',
        '      <xsd:element ref="cbc:Name" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionAgencyID" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionAgencyName" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionVersionID" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionAgencyURI" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionURI" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionReasonCode" minOccurs="0"/>',
        '      <xsd:element ref="cbc:ExtensionReason" minOccurs="0"/>',
        '      <xsd:element ref="ExtensionContent"/>',
        "    </xsd:sequence>",
        "  </xsd:complexType>",
        '  <xsd:complexType name="ExtensionContentType">',
        '    <xsd:sequence><xsd:any namespace="##other" processContents="skip"/></xsd:sequence>',
        "  </xsd:complexType>",
        "</xsd:schema>",
    ]
    return out


def invoice():
    out = header(
        "inv",
        {
            "cac": "../common/CommonAggregateComponents-2.xsd",
            "cbc": "../common/CommonBasicComponents-2.xsd",
            "ext": "../common/CommonExtensionComponents-2.xsd",
        },
    )
    out.append('  <xsd:element name="Invoice" type="InvoiceType"/>')
    out.append('  <xsd:complexType name="InvoiceType">')
    out.append("    <xsd:sequence>")
    out += [f"      {particle(t)}" for t in INVOICE.split()]
    out.append("    </xsd:sequence>")
    out.append("  </xsd:complexType>")
    out.append("</xsd:schema>")
    return out


WSDL = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by tests/data/ubl/generate.py: edit that, not this. -->
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:svc="{SVC}" xmlns:inv="{NS['inv']}" xmlns:cbc="{NS['cbc']}"
    name="UblInvoicing" targetNamespace="{SVC}">
  <wsdl:documentation>
    Drafts and reviews invoices in the style of UBL 2: DraftInvoice answers a whole
    Invoice document (structured output), ReviewInvoice takes one.
  </wsdl:documentation>
  <wsdl:types>
    <xsd:schema targetNamespace="{SVC}" elementFormDefault="qualified">
      <xsd:import namespace="{NS['inv']}" schemaLocation="xsd/maindoc/Invoice-2.xsd"/>
      <xsd:import namespace="{NS['cbc']}" schemaLocation="xsd/common/CommonBasicComponents-2.xsd"/>
      <xsd:element name="DraftInvoiceRequest">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="Instructions" type="xsd:string"/>
            <xsd:element ref="cbc:BuyerReference" minOccurs="0"/>
            <xsd:element ref="cbc:DocumentCurrencyCode" minOccurs="0"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
      <xsd:element name="ReviewInvoiceResult">
        <xsd:complexType>
          <xsd:sequence>
            <xsd:element name="Verdict">
              <xsd:simpleType>
                <xsd:restriction base="xsd:token">
                  <xsd:enumeration value="ACCEPT"/>
                  <xsd:enumeration value="QUERY"/>
                  <xsd:enumeration value="REJECT"/>
                </xsd:restriction>
              </xsd:simpleType>
            </xsd:element>
            <xsd:element name="Remark" type="xsd:string" minOccurs="0" maxOccurs="unbounded"/>
          </xsd:sequence>
        </xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </wsdl:types>
  <wsdl:message name="DraftInvoiceIn"><wsdl:part name="body" element="svc:DraftInvoiceRequest"/></wsdl:message>
  <wsdl:message name="DraftInvoiceOut"><wsdl:part name="body" element="inv:Invoice"/></wsdl:message>
  <wsdl:message name="ReviewInvoiceIn"><wsdl:part name="body" element="inv:Invoice"/></wsdl:message>
  <wsdl:message name="ReviewInvoiceOut"><wsdl:part name="body" element="svc:ReviewInvoiceResult"/></wsdl:message>
  <wsdl:portType name="UblInvoicingPort">
    <wsdl:operation name="DraftInvoice">
      <wsdl:input message="svc:DraftInvoiceIn"/><wsdl:output message="svc:DraftInvoiceOut"/>
    </wsdl:operation>
    <wsdl:operation name="ReviewInvoice">
      <wsdl:input message="svc:ReviewInvoiceIn"/><wsdl:output message="svc:ReviewInvoiceOut"/>
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="UblInvoicingBinding" type="svc:UblInvoicingPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="DraftInvoice">
      <soap:operation soapAction="urn:soapgate:test:ubl:DraftInvoice"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
    <wsdl:operation name="ReviewInvoice">
      <soap:operation soapAction="urn:soapgate:test:ubl:ReviewInvoice"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input>
      <wsdl:output><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="UblInvoicing">
    <wsdl:port name="UblInvoicingPort" binding="svc:UblInvoicingBinding">
      <soap:address location="http://localhost:8080/soap/UblInvoicing"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""

MAPPING = """# Generated by tests/data/ubl/generate.py: edit that, not this.
# DraftInvoice answers a whole UBL-style Invoice through structured output.
service: UblInvoicing
wsdl: UblInvoicing.wsdl
operations:
  DraftInvoice:
    model:
      targets:
        - { model: anthropic.claude-3-5-sonnet-20240620-v1:0 }
      max_tokens: 4096
      temperature: 0
    input:
      instructions: Instructions
      buyer: BuyerReference
    prompt: |
      Draft an invoice as a UBL 2 Invoice document.
      {% if buyer %}Buyer reference: {{ buyer }}.{% endif %}
      {{ instructions }}
    output:
      structured: true
      tool: draft_invoice
    repair_attempts: 2
"""

REQUEST = f"""<svc:DraftInvoiceRequest xmlns:svc="{SVC}" xmlns:cbc="{NS['cbc']}">
  <svc:Instructions>Two lines of office chairs to Acme GmbH, 19 % VAT, due in 30 days.</svc:Instructions>
  <cbc:BuyerReference>PO-4711</cbc:BuyerReference>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
</svc:DraftInvoiceRequest>
"""


def write(rel, text):
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, list):
        text = "\n".join(text) + "\n"
    path.write_text(text, encoding="utf-8")


def main():
    write("wsdl/UblInvoicing.wsdl", WSDL)
    write("wsdl/xsd/common/CodeLists-2.xsd", code_lists())
    write("wsdl/xsd/common/UnqualifiedDataTypes-2.xsd", udt())
    write("wsdl/xsd/common/CommonBasicComponents-2.xsd", cbc())
    write("wsdl/xsd/common/CommonAggregateComponents-2.xsd", cac())
    write("wsdl/xsd/common/CommonExtensionComponents-2.xsd", ext())
    write("wsdl/xsd/maindoc/Invoice-2.xsd", invoice())
    write("mappings/UblInvoicing.yaml", MAPPING)
    write("request.xml", REQUEST)
    types = len(CODE_LISTS) + len(UDT) + len(basic_names()) + len(AGGREGATES) + 3 + 1
    print(f"{types} named types: {len(CODE_LISTS)} code lists, {len(UDT)} data types, "
          f"{len(basic_names())} basic, {len(AGGREGATES)} aggregate, 3 extension, 1 document")


if __name__ == "__main__":
    main()
