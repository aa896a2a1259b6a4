// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {LibDiamond} from "../diamond/LibDiamond.sol";
import {LibGemforce} from "../libraries/LibGemforce.sol";

/// Invoice-backed trade deals paid in USDC, through their whole lifecycle: create, deposit invoices, fund
/// with USDC (fully funded at the target), borrower withdraws funding, interest distributed, repaid,
/// collateral (VABB) redeemed. Event signatures are Gemforce's first generation (GEMFORCE.md).
contract TradeDealFacet {
    event TradeDealCreated(
        uint256 indexed tradeDealId,
        string name,
        string symbol,
        uint256 interestRate,
        uint256 vabbToVabiRatio,
        bool active,
        address nftAddress,
        address vabbAddress,
        address vabiAddress,
        address usdcAddress
    );
    event TradeDealUpdated(
        uint256 indexed tradeDealId,
        string name,
        string symbol,
        uint256 interestRate,
        uint256 vabbToVabiRatio,
        bool active,
        address vabbAddress,
        address vabiAddress,
        address usdcAddress
    );
    event TradeDealActivated(uint256 indexed tradeDealId);
    event TradeDealDeactivated(uint256 indexed tradeDealId);
    event TradeDealParticipantAdded(uint256 indexed tradeDealId, address indexed participant);
    event TradeDealParticipantRemoved(uint256 indexed tradeDealId, address indexed participant);
    event TradeDealRequiredClaimTopicsSet(uint256 indexed tradeDealId, uint256[] claimTopics);
    event InvoiceDepositedToTradeDeal(uint256 indexed tradeDealId, uint256 indexed tokenId);
    event InvoiceWithdrawnFromTradeDeal(uint256 indexed tradeDealId, uint256 indexed tokenId);
    event USDCDepositedToTradeDeal(uint256 indexed tradeDealId, uint256 amount, address depositor);
    event USDCWithdrawnFromTradeDeal(uint256 indexed tradeDealId, uint256 amount);
    event TradeDealFullyFunded(uint256 indexed tradeDealId, uint256 fundingTarget);
    event InterestDistributedForTradeDeal(
        uint256 indexed tradeDealId,
        uint256 totalInterest,
        uint256 invoicePoolInterest,
        uint256 vabiInterest,
        uint256 vabiTokensMinted
    );
    event TradeDealFundingWithdrawn(uint256 indexed tradeDealId, address indexed recipient, uint256 amount);
    event TradeDealRepaid(uint256 indexed tradeDealId, address indexed repayer, uint256 amount, bool fullyRepaid);
    event VABBTokensRedeemed(uint256 indexed tradeDealId, address indexed redeemer, uint256 vabbAmount, uint256 usdcAmount);

    struct TradeDealView {
        string name;
        string symbol;
        uint256 interestRate;
        uint256 vabbToVabiRatio;
        bool active;
        address owner;
        address nftAddress;
        address vabbAddress;
        address vabiAddress;
        address usdcAddress;
        uint256 fundingTarget;
        uint256 funded;
        bool fullyFunded;
        uint256 withdrawn;
        uint256 repaid;
        uint256 interestDistributed;
    }

    error UnknownTradeDeal(uint256 tradeDealId);
    error TradeDealInactive(uint256 tradeDealId);
    error NotParticipant(uint256 tradeDealId, address account);
    error NotTradeDealOwner(uint256 tradeDealId, address account);
    error InsufficientBalance(uint256 available, uint256 requested);

    function createTradeDeal(
        string calldata name,
        string calldata symbol,
        uint256 interestRate,
        uint256 vabbToVabiRatio,
        address nftAddress,
        address vabbAddress,
        address vabiAddress,
        address usdcAddress,
        uint256 fundingTarget
    ) external returns (uint256 tradeDealId) {
        LibDiamond.enforceIsContractOwner();
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        tradeDealId = ++l.tradeDealCount;
        LibGemforce.TradeDeal storage d = l.tradeDeals[tradeDealId];
        d.name = name;
        d.symbol = symbol;
        d.interestRate = interestRate;
        d.vabbToVabiRatio = vabbToVabiRatio;
        d.active = true;
        d.owner = msg.sender;
        d.nftAddress = nftAddress;
        d.vabbAddress = vabbAddress;
        d.vabiAddress = vabiAddress;
        d.usdcAddress = usdcAddress;
        d.fundingTarget = fundingTarget;
        emit TradeDealCreated(
            tradeDealId, name, symbol, interestRate, vabbToVabiRatio, true, nftAddress, vabbAddress, vabiAddress, usdcAddress
        );
    }

    function updateTradeDeal(
        uint256 tradeDealId,
        string calldata name,
        string calldata symbol,
        uint256 interestRate,
        uint256 vabbToVabiRatio,
        address vabbAddress,
        address vabiAddress,
        address usdcAddress
    ) external {
        LibGemforce.TradeDeal storage d = ownedDeal(tradeDealId);
        d.name = name;
        d.symbol = symbol;
        d.interestRate = interestRate;
        d.vabbToVabiRatio = vabbToVabiRatio;
        d.vabbAddress = vabbAddress;
        d.vabiAddress = vabiAddress;
        d.usdcAddress = usdcAddress;
        emit TradeDealUpdated(
            tradeDealId, name, symbol, interestRate, vabbToVabiRatio, d.active, vabbAddress, vabiAddress, usdcAddress
        );
    }

    function activateTradeDeal(uint256 tradeDealId) external {
        ownedDeal(tradeDealId).active = true;
        emit TradeDealActivated(tradeDealId);
    }

    function deactivateTradeDeal(uint256 tradeDealId) external {
        ownedDeal(tradeDealId).active = false;
        emit TradeDealDeactivated(tradeDealId);
    }

    function addTradeDealParticipant(uint256 tradeDealId, address participant) external {
        ownedDeal(tradeDealId).participants[participant] = true;
        emit TradeDealParticipantAdded(tradeDealId, participant);
    }

    function removeTradeDealParticipant(uint256 tradeDealId, address participant) external {
        ownedDeal(tradeDealId).participants[participant] = false;
        emit TradeDealParticipantRemoved(tradeDealId, participant);
    }

    function setTradeDealRequiredClaimTopics(uint256 tradeDealId, uint256[] calldata claimTopics) external {
        ownedDeal(tradeDealId).requiredClaimTopics = claimTopics;
        emit TradeDealRequiredClaimTopicsSet(tradeDealId, claimTopics);
    }

    /// Moves an invoice NFT into the Diamond's custody as collateral of the deal.
    function depositInvoice(uint256 tradeDealId, uint256 tokenId) external {
        LibGemforce.TradeDeal storage d = activeDeal(tradeDealId);
        IERC721(d.nftAddress).transferFrom(msg.sender, address(this), tokenId);
        d.invoiceDepositors[tokenId] = msg.sender;
        emit InvoiceDepositedToTradeDeal(tradeDealId, tokenId);
    }

    function withdrawInvoice(uint256 tradeDealId, uint256 tokenId) external {
        LibGemforce.TradeDeal storage d = deal(tradeDealId);
        address depositor = d.invoiceDepositors[tokenId];
        if (depositor != msg.sender) revert NotParticipant(tradeDealId, msg.sender);
        delete d.invoiceDepositors[tokenId];
        IERC721(d.nftAddress).transferFrom(address(this), depositor, tokenId);
        emit InvoiceWithdrawnFromTradeDeal(tradeDealId, tokenId);
    }

    /// A participant funds the deal; collateral tokens (VABB) are credited one to one with USDC.
    function depositUSDC(uint256 tradeDealId, uint256 amount) external {
        LibGemforce.TradeDeal storage d = activeDeal(tradeDealId);
        if (!d.participants[msg.sender]) revert NotParticipant(tradeDealId, msg.sender);
        IERC20(d.usdcAddress).transferFrom(msg.sender, address(this), amount);
        d.funded += amount;
        d.vabbBalances[msg.sender] += amount;
        emit USDCDepositedToTradeDeal(tradeDealId, amount, msg.sender);
        if (!d.fullyFunded && d.funded >= d.fundingTarget) {
            d.fullyFunded = true;
            emit TradeDealFullyFunded(tradeDealId, d.fundingTarget);
        }
    }

    /// A participant takes back USDC before the borrower draws the funding.
    function withdrawUSDC(uint256 tradeDealId, uint256 amount) external {
        LibGemforce.TradeDeal storage d = deal(tradeDealId);
        uint256 balance = d.vabbBalances[msg.sender];
        if (balance < amount || d.withdrawn > 0) revert InsufficientBalance(balance, amount);
        d.vabbBalances[msg.sender] = balance - amount;
        d.funded -= amount;
        IERC20(d.usdcAddress).transfer(msg.sender, amount);
        emit USDCWithdrawnFromTradeDeal(tradeDealId, amount);
    }

    /// The borrower (the deal's owner) draws the funding.
    function withdrawTradeDealFunding(uint256 tradeDealId, address recipient, uint256 amount) external {
        LibGemforce.TradeDeal storage d = ownedDeal(tradeDealId);
        uint256 available = d.funded - d.withdrawn;
        if (amount > available) revert InsufficientBalance(available, amount);
        d.withdrawn += amount;
        IERC20(d.usdcAddress).transfer(recipient, amount);
        emit TradeDealFundingWithdrawn(tradeDealId, recipient, amount);
    }

    /// Interest paid in USDC by the caller: three quarters to the invoice pool, a quarter to VABI holders,
    /// VABI minted at 18 decimals for the USDC's 6.
    function distributeInterest(uint256 tradeDealId, uint256 totalInterest) external {
        LibGemforce.TradeDeal storage d = ownedDeal(tradeDealId);
        IERC20(d.usdcAddress).transferFrom(msg.sender, address(this), totalInterest);
        d.interestDistributed += totalInterest;
        uint256 vabiInterest = totalInterest / 4;
        uint256 invoicePoolInterest = totalInterest - vabiInterest;
        emit InterestDistributedForTradeDeal(
            tradeDealId, totalInterest, invoicePoolInterest, vabiInterest, vabiInterest * 1e12
        );
    }

    function repayTradeDeal(uint256 tradeDealId, uint256 amount) external {
        LibGemforce.TradeDeal storage d = deal(tradeDealId);
        IERC20(d.usdcAddress).transferFrom(msg.sender, address(this), amount);
        d.repaid += amount;
        emit TradeDealRepaid(tradeDealId, msg.sender, amount, d.repaid >= d.withdrawn);
    }

    /// Redeems collateral tokens for USDC plus the deal's interest rate on them.
    function redeemVABBTokens(uint256 tradeDealId, uint256 vabbAmount) external {
        LibGemforce.TradeDeal storage d = deal(tradeDealId);
        uint256 balance = d.vabbBalances[msg.sender];
        if (balance < vabbAmount) revert InsufficientBalance(balance, vabbAmount);
        d.vabbBalances[msg.sender] = balance - vabbAmount;
        uint256 usdcAmount = vabbAmount + (vabbAmount * d.interestRate) / 10_000;
        IERC20(d.usdcAddress).transfer(msg.sender, usdcAmount);
        emit VABBTokensRedeemed(tradeDealId, msg.sender, vabbAmount, usdcAmount);
    }

    function getTradeDeal(uint256 tradeDealId) external view returns (TradeDealView memory v) {
        LibGemforce.TradeDeal storage d = deal(tradeDealId);
        v = TradeDealView({
            name: d.name,
            symbol: d.symbol,
            interestRate: d.interestRate,
            vabbToVabiRatio: d.vabbToVabiRatio,
            active: d.active,
            owner: d.owner,
            nftAddress: d.nftAddress,
            vabbAddress: d.vabbAddress,
            vabiAddress: d.vabiAddress,
            usdcAddress: d.usdcAddress,
            fundingTarget: d.fundingTarget,
            funded: d.funded,
            fullyFunded: d.fullyFunded,
            withdrawn: d.withdrawn,
            repaid: d.repaid,
            interestDistributed: d.interestDistributed
        });
    }

    function tradeDealCount() external view returns (uint256) {
        return LibGemforce.appStorage().tradeDealCount;
    }

    function isTradeDealParticipant(uint256 tradeDealId, address account) external view returns (bool) {
        return deal(tradeDealId).participants[account];
    }

    function vabbBalanceOf(uint256 tradeDealId, address account) external view returns (uint256) {
        return deal(tradeDealId).vabbBalances[account];
    }

    function deal(uint256 tradeDealId) private view returns (LibGemforce.TradeDeal storage d) {
        LibGemforce.Layout storage l = LibGemforce.appStorage();
        if (tradeDealId == 0 || tradeDealId > l.tradeDealCount) revert UnknownTradeDeal(tradeDealId);
        d = l.tradeDeals[tradeDealId];
    }

    function activeDeal(uint256 tradeDealId) private view returns (LibGemforce.TradeDeal storage d) {
        d = deal(tradeDealId);
        if (!d.active) revert TradeDealInactive(tradeDealId);
    }

    function ownedDeal(uint256 tradeDealId) private view returns (LibGemforce.TradeDeal storage d) {
        d = deal(tradeDealId);
        if (d.owner != msg.sender) revert NotTradeDealOwner(tradeDealId, msg.sender);
    }
}
